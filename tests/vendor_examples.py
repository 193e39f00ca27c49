"""The vendor document's example calls and answers, verbatim, shared by the tests on both sides.

Copied from /work/shared/spec/vipex-api.hu.txt (the authority): ``query`` is the
query string of the document's curl URL (rejoined where the PDF wrapped it) and
``answer`` its JSON answer character for character — raw strings, so escapes such
as ``\\u00ed`` stay as the service sends them. The emulator tests replay the
queries and compare answers; the parser tests feed the answers to the client.
"""

from __future__ import annotations

from typing import NamedTuple


class Example(NamedTuple):
    """One documented call: what was asked and what the service answered."""

    query: str
    answer: str


EXAMPLES: dict[str, Example] = {
    "dial_phonenumber": Example(
        (
            "rt=api&action=dial_phonenumber&format=json&vipex_id=3212601&exten=1600"
            "&phonenumber=3619996000"
        ),
        r"""{
  "onvipex_result": {
    "result": 1,
    "id": 2253053
  }
}""",
    ),
    "outbound_ivr": Example(
        (
            "rt=api&action=outbound_ivr&format=json&vipex_id=1643897&phonenumber=36201234567"
            "&exten=700&digits=12345678"
        ),
        r"""{
  "onvipex_result": {
    "result": 1,
    "id": 1912945
  }
}""",
    ),
    "get_extens_current_calls": Example(
        "rt=api&action=get_extens_current_calls&format=json&vipex_id=1643897&exten=2000",
        r"""{
  "onvipex_result": {
    "result": 1,
    "exten": "2000",
    "extens_current_calls": [
      {
        "id": 114117854,
        "call_id": 114117804,
        "other_party_type": "external",
        "direction": "inbound",
        "start_time": "2023-07-21 16:29:58",
        "answer_time": "2023-07-21 16:30:11",
        "other_party_number": "3619996000"
      },
      {
        "id": 114118134,
        "call_id": 114118134,
        "other_party_type": "internal",
        "direction": "outbound",
        "start_time": "2023-07-21 16:31:56",
        "answer_time": null,
        "other_party_number": "2002"
      }
    ]
  }
}""",
    ),
    "get_vipex_user": Example(
        "rt=api&action=get_vipex_user&format=json&vipex_id=3212601&id=27",
        r"""{
  "onvipex_result": {
    "result": 1,
    "id": 27,
    "name": "Teszt Felhasznalo",
    "email": "test_user@opennet.hu",
    "operator": 1,
    "status": 0,
    "extens": [
      {
        "exten": "1105",
        "cost_location": "520",
        "default": 1,
        "operator": 1
      }
    ]
  }
}""",
    ),
    "get_vipex_user_list": Example(
        "rt=api&format=json&action=get_vipex_user_list&vipex_id=3212601",
        r"""{
  "onvipex_result": {
    "result": 1,
    "user_list": [
      {
        "id": 1,
        "name": "Teszt Felhasznalo 1",
        "email": "test_user1@opennet.hu",
        "operator": 1,
        "status": 0,
        "extens": [
          {
            "exten": "1100",
            "cost_location": "311",
            "default": 1,
            "operator": 1
          }
        ]
      },
      {
        "id": 2,
        "name": "Teszt Felhasznalo 2",
        "email": "test_user2@opennet.hu",
        "operator": 0,
        "status": null,
        "extens": [
          {
             "exten": "1101",
            "cost_location": "311",
            "default": 1,
            "operator": 0
          },
          {
            "exten": "1103",
            "cost_location": "312",
            "default": 0,
            "operator": 0
          }
        ]
      },
      {
        "id": 81,
        "name": "Teszt Felhasznalo 3",
        "email": "test_user3@opennet.hu",
        "operator": 0,
        "status": null,
        "extens": [
          {
            "exten": "1110",
            "cost_location": null,
            "default": 1,
            "operator": 0
          },
          {
            "exten": "1111",
            "cost_location": null,
            "default": 0,
            "operator": 0
          }
        ]
      }
    ]
  }
}""",
    ),
    "get_operator_status_list": Example(
        "rt=api&format=json&action=get_operator_status_list&vipex_id=3212601",
        r"""{
  "onvipex_result": {
    "result": 1,
    "status_list": [
      {
        "status_id": 1,
        "status": 0,
        "label": "H\u00edvhat\u00f3",
        "logout": 0,
        "deleted": 0
      },
      {
        "status_id": 2,
        "status": 1,
        "label": "Kijelentkezett",
        "logout": 1,
        "deleted": 0
      },
      {
        "status_id": 6,
        "status": 2,
        "label": "Sz\u00fcnet",
        "logout": 0,
        "deleted": 0
      },
      {
        "status_id": 8,
        "status": 4,
        "label": "Ut\u00f3munka",
        "logout": 0,
        "deleted": 0
      }
    ]
  }
}""",
    ),
    "get_operator_status_history": Example(
        (
            "rt=api&format=json&action=get_operator_status_history&vipex_id=3212601&id=27"
            "&date_from=2019-12-09+00%3A00%3A00&date_to=2019-12-09+23%3A59%3A59"
        ),
        r"""{
  "onvipex_result": {
    "result": 1,
    "id": 27,
    "status_history": [
      {
        "status_id": 6,
        "date_from": "2019-12-09 16:31:35",
        "date_to": "2019-12-09 16:31:39"
      },
      {
        "status_id": 1,
        "date_from": "2019-12-09 16:31:40",
        "date_to": "2019-12-09 16:31:50"
      },
      {
        "status_id": 6,
        "date_from": "2019-12-09 16:31:51",
        "date_to": "2019-12-09 16:31:53"
      },
      {
        "status_id": 2,
        "date_from": "2019-12-09 16:31:54",
        "date_to": "2019-12-09 16:31:55"
      },
      {
        "status_id": 1,
        "date_from": "2019-12-09 16:31:56",
        "date_to": "0000-00-00 00:00:00"
      }
    ]
  }
}""",
    ),
    "set_operator_status": Example(
        "rt=api&format=json&action=set_operator_status&vipex_id=3212601&user_id=82&status_id=2",
        r"""{
  "onvipex_result": {
    "result": 1,
    "new_status_id": 1
  }
}""",
    ),
    "set_call_forward": Example(
        (
            "rt=api&action=set_call_forward&format=json&vipex_id=1643897&number=6025"
            "&forward_type=noanswer&destination_type=phonenumber&destination_number=36701234567"
            "&noanswer_timeout=60&call_type=all"
        ),
        r"""{
  "onvipex_result": {
    "result": 1
  }
}""",
    ),
    "get_call_forward_list": Example(
        "rt=api&action=get_call_forward_list&format=json&vipex_id=1643897&number=234",
        r"""{
  "onvipex_result": {
    "result": 1,
    "number": "234",
    "call_forward_list": [
      {
        "forward_type": "noanswer",
        "destination_type": "phonenumber",
        "destination_number": "36701234567",
        "noanswer_timeout": 60,
        "call_type": "all"
      },
      {
        "forward_type": "unavailable",
        "destination_type": "exten",
        "destination_number": "432",
        "call_type": "external"
      }
    ]
  }
}""",
    ),
    "del_call_forward": Example(
        (
            "rt=api&action=del_call_forward&format=json&vipex_id=1643897&number=234"
            "&forward_type=noanswer"
        ),
        r"""{
  "onvipex_result": {
    "result": 1
  }
}""",
    ),
    "set_phonebook_entry": Example(
        (
            "rt=api&action=set_phonebook_entry&format=json&vipex_id=1643897&phonenumber=3619996000"
            "&name=Opennetworks+Kft&tags=tag1%2Ctag2&comment=Test+comment"
            "&custom_field_options=%5B%7B%22field_id%22%3A1%2C%22field_value%22%3A%22opt1%22%7D%5D"
        ),
        r"""{
  "onvipex_result": {
    "result": 1
  }
}""",
    ),
    "get_phonebook_entry": Example(
        "rt=api&action=get_phonebook_entry&format=json&vipex_id=1643897&phonenumber=3619996000",
        r"""{
  "onvipex_result": {
    "result": 1,
    "phonenumber": 3619996000,
    "name": "Opennetworks Kft",
    "tags": "tag1,tag2,tag3",
    "comment": "Test comment",
    "custom_field_options": [
      {
        "field_id": 1,
        "field_value": "opt1"
      }
    ]
  }
}""",
    ),
    "get_phonebook_list": Example(
        "rt=api&action=get_phonebook_list&format=json&vipex_id=1643897&offset=11&limit=1",
        r"""{
  "onvipex_result": {
    "result": 1,
    "phonebook_list": [
      {
        "phonenumber": 3619996000,
        "name": "Opennetworks Kft",
        "tags": "tag1,tag2,tag3",
        "comment": "Test comment",
        "custom_field_options": [
          {
            "field_id": 1,
            "field_value": "opt1"
          }
        ]
      }
    ],

    "metadata": {
      "max_queryable_rows": 200,
      "full_count": "18",
      "list_count": 1,
      "list_from": 11,
      "list_to": 11
    }
  }
}""",
    ),
    "del_phonebook_entry": Example(
        "rt=api&action=del_phonebook_entry&format=json&vipex_id=1643897&phonenumber=3619996000",
        r"""{
  "onvipex_result": {
    "result": 1
  }
}""",
    ),
    "get_phonebook_custom_field_list": Example(
        "rt=api&action=get_phonebook_custom_field_list&format=json&vipex_id=1643897",
        r"""{
  "onvipex_result": {
    "result": 1,
    "phonebook_custom_field_list": [
      {
        "field_id": 1,
        "field_name": "teszt1",
        "field_type": "menu",
        "options": [
          {
            "option_id": 1,
            "option_label": "opt1"
          },
          {
            "option_id": 9,
            "option_label": "opt2"
          },
          {
            "option_id": 3,
            "option_label": "opt3"
          }
        ]
      },
      {
        "field_id": 10,
        "field_name": "irsz",
        "field_type": "number_sequence"
      },
      {
        "field_id": 19,
        "field_name": "Teszt szöveg",
        "field_type": "text"
      }
    ]
  }
}""",
    ),
}
