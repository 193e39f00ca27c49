"""The emulator's cached listing order must follow every way the phonebook can change."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vipexsync.emulator.state import Phonebook, PhonebookRecord, Subscription, phone_sort_key

numbers = st.integers(min_value=1, max_value=10**12).map(str)
operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "del", "pop", "setdefault", "update", "ior", "clear", "popitem"]),
        numbers,
    ),
    max_size=40,
)


def _apply(book: dict[str, PhonebookRecord], op: str, number: str) -> None:
    record = PhonebookRecord(name=f"n{number}")
    if op == "set":
        book[number] = record
    elif op == "del" and number in book:
        del book[number]
    elif op == "pop":
        book.pop(number, None)
    elif op == "setdefault":
        book.setdefault(number, record)
    elif op == "update":
        book.update({number: record, number + "1": record})
    elif op == "ior":
        book |= {number + "2": record}
    elif op == "clear":
        book.clear()
    elif op == "popitem" and book:
        book.popitem()


@given(operations)
def test_sorted_numbers_match_a_fresh_sort_after_any_changes(ops: list[tuple[str, str]]) -> None:
    sub = Subscription("1")
    assert isinstance(sub.phonebook, Phonebook)
    for op, number in ops:
        _apply(sub.phonebook, op, number)
        assert sub.sorted_numbers() == sorted(sub.phonebook, key=phone_sort_key)
    assert [n for n, _ in sub.sorted_phonebook()] == sorted(sub.phonebook, key=phone_sort_key)


def test_replacing_a_record_keeps_the_order_and_shows_the_new_record() -> None:
    sub = Subscription("1")
    for number in ("36201234567", "3612345601", "361234560"):
        sub.phonebook[number] = PhonebookRecord(name="old")
    order = sub.sorted_numbers()
    sub.phonebook["3612345601"] = PhonebookRecord(name="new")
    assert sub.sorted_numbers() is order  # the cached list was kept
    assert dict(sub.sorted_phonebook())["3612345601"].name == "new"
    assert order == ["361234560", "3612345601", "36201234567"]


def test_a_plain_dict_assigned_by_hand_still_lists_in_order() -> None:
    sub = Subscription("1")
    sub.phonebook = {"36201234567": PhonebookRecord(), "3612345601": PhonebookRecord()}
    assert sub.sorted_numbers() == ["3612345601", "36201234567"]
