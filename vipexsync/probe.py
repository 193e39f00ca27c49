"""``vipexsync probe``: learn what VIPeX does with a write, on a reserved test number.

The vendor document leaves open whether ``set_phonebook_entry`` keeps or
clears what it is not sent, and whether it trims, truncates or normalises
text. The probe finds out with a short, reversible experiment on one test
number that must not exist yet:

1. create it with every field and a value in each custom field, read it back;
2. update it leaving out ``comment`` and the first custom field, read back;
3. update with ``comment = ""``, read back;
4. a padded name, a non-NFC name and a long name, each read back;
5. delete it and confirm it is gone (the answer for a missing number is kept).

The entry is deleted even when a step fails; if that delete fails too, the
probe says so loudly and names the command that removes it by hand. Each step
is logged. What the answers mean is decided by :func:`interpret`, a pure
function over the recorded answers (:class:`ProbeAnswers`); the shell below
only asks and records.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import phonenumbers

from vipexsync.config import Config
from vipexsync.errors import ApiError, ApiResultError, LockHeldError, ProbeError, UsageError
from vipexsync.locks import job_lock
from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
from vipexsync.mirror.findings import save_findings
from vipexsync.semantics import Omission, ProbeFindings, WriteSemantics
from vipexsync.vipex.client import VipexClient
from vipexsync.vipex.models import CustomField, PhonebookEntry

log = logging.getLogger("vipexsync.probe")

# Ofcom reserves 020 7946 0000-0999 for drama: valid-looking, never anyone's
# line. phonenumbers accepts it as a valid London number.
DEFAULT_PROBE_NUMBER = "442079460999"

CREATE_NAME = "vipexsync probe (safe to delete)"
UPDATED_NAME = "vipexsync probe, updated"
PROBE_COMMENT = "written by vipexsync probe; it deletes this entry itself"
PROBE_TAG = "vipexsync-probe"
# Short, so that a service that also cuts names does not hide its trimming or
# normalising behind the cut.
PADDED_NAME = "  probe  "
NON_NFC_NAME = "Jose\u0301"  # "José" with a combining accent (NFD)
LONG_NAME = "vipexsync probe " + "x" * 300


def check_probe_number(number: str) -> str:
    """The number in VIPeX's form if ``phonenumbers`` calls it valid; else UsageError."""
    digits = number.strip().lstrip("+")
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        parsed = None
    if not digits.isdigit() or parsed is None or not phonenumbers.is_valid_number(parsed):
        raise UsageError(
            f"probe number {number!r} is not a valid international number; give one in "
            f"VIPeX's form (e.g. {DEFAULT_PROBE_NUMBER}) with --number or [vipex] probe_number"
        )
    return digits


# -- the pure part: what the answers mean -------------------------------------


Answer = PhonebookEntry | str  # the entry read back, or VIPeX's refusal of the write


@dataclass(frozen=True, slots=True)
class ProbeAnswers:
    """What VIPeX answered at each step, as recorded by the probe.

    ``sent_fields`` are the custom field values of the create;
    ``left_out_field`` is the one the second step did not send (None when the
    subscription has no custom field).
    """

    sent_fields: tuple[tuple[int, str], ...]
    left_out_field: int | None
    created: PhonebookEntry
    omitted: PhonebookEntry
    emptied: PhonebookEntry
    padded: Answer
    non_nfc: Answer
    long: Answer
    not_found: str


@dataclass(frozen=True, slots=True)
class Interpretation:
    semantics: WriteSemantics
    notes: tuple[str, ...] = field(default=())


def _field_value(entry: PhonebookEntry, field_id: int) -> str:
    return next((o.field_value for o in entry.custom_field_options if o.field_id == field_id), "")


def _omission(answers: ProbeAnswers, notes: list[str]) -> Omission:
    kept: list[bool] = []
    if answers.created.comment == PROBE_COMMENT:
        kept.append(answers.omitted.comment == PROBE_COMMENT)
        notes.append(
            "a left-out comment was "
            + ("kept" if kept[-1] else f"changed to {answers.omitted.comment!r}")
        )
    else:
        notes.append(f"the comment was not stored as sent ({answers.created.comment!r})")
    if answers.left_out_field is not None:
        sent = dict(answers.sent_fields)[answers.left_out_field]
        stored = _field_value(answers.created, answers.left_out_field)
        if stored == sent:
            after = _field_value(answers.omitted, answers.left_out_field)
            kept.append(after == sent)
            notes.append(
                f"a left-out custom field ({answers.left_out_field}) was "
                + ("kept" if kept[-1] else f"changed to {after!r}")
            )
        else:
            notes.append(f"custom field {answers.left_out_field} was not stored as sent")
    else:
        notes.append("the subscription has no custom field; only the comment was tested")
    if not kept:
        return Omission.UNKNOWN
    return Omission.KEEP if all(kept) else Omission.CLEAR


def _name_answer(answer: Answer, what: str, notes: list[str]) -> str | None:
    if isinstance(answer, str):
        notes.append(f"VIPeX refused the {what} name: {answer}")
        return None
    return answer.name


def interpret(answers: ProbeAnswers) -> Interpretation:
    """The write semantics the recorded answers show, with a note for each finding."""
    notes: list[str] = []
    omitted = _omission(answers, notes)
    if answers.emptied.comment != "":
        notes.append(
            f'sending comment = "" did not clear it ({answers.emptied.comment!r}); '
            "the daemon cannot clear a field on this service"
        )
    trims = False
    padded = _name_answer(answers.padded, "padded", notes)
    if padded == PADDED_NAME.strip():
        trims = True
        notes.append("leading and trailing spaces are trimmed")
    elif padded is not None and padded != PADDED_NAME:
        notes.append(f"a padded name came back as {padded!r}: not understood, not assumed")
    nfc = False
    non_nfc = _name_answer(answers.non_nfc, "non-NFC", notes)
    if non_nfc == unicodedata.normalize("NFC", NON_NFC_NAME):
        nfc = True
        notes.append("text is normalised to Unicode NFC")
    elif non_nfc is not None and non_nfc != NON_NFC_NAME:
        notes.append(f"a non-NFC name came back as {non_nfc!r}: not understood, not assumed")
    max_name_length: int | None = None
    long = _name_answer(answers.long, f"{len(LONG_NAME)}-character", notes)
    if long is not None and long != LONG_NAME:
        if long and LONG_NAME.startswith(long):
            max_name_length = len(long)
            notes.append(f"names are cut at {max_name_length} characters")
        else:
            notes.append(f"a long name came back as {long[:40]!r}...: not understood")
    notes.append(f"a missing number is answered: {answers.not_found or '(nothing)'}")
    semantics = WriteSemantics(omitted, trims, nfc, max_name_length)
    return Interpretation(semantics, tuple(notes))


# -- the shell: ask, record, always clean up ---------------------------------------


def probe_value(custom: CustomField) -> str | None:
    """A valid value for one custom field (None: a menu without options)."""
    if custom.field_type == "menu":
        return custom.options[0].option_label if custom.options else None
    if custom.field_type == "number_sequence":
        return "1"
    return "vipexsync probe"


class _Recorder:
    """Calls VIPeX step by step, logging each step and its answer."""

    def __init__(self, client: VipexClient, vipex_id: str, number: str) -> None:
        self.client = client
        self.vipex_id = vipex_id
        self.number = number
        self.steps: list[str] = []

    def note(self, text: str) -> None:
        self.steps.append(text)
        log.info("probe %s: %s", self.number, text)

    def write(self, what: str, params: dict[str, object], *, may_refuse: bool = False) -> str:
        """One set_phonebook_entry; returns "" or VIPeX's refusal when ``may_refuse``."""
        sent = ", ".join(sorted(params)) or "nothing"
        try:
            self.client.call(
                "set_phonebook_entry",
                {"vipex_id": self.vipex_id, "phonenumber": self.number, **params},
            )
        except ApiResultError as exc:
            self.note(f"{what}: sent {sent}; VIPeX refused: {exc.reason}")
            if may_refuse:
                return exc.reason or "(no reason given)"
            raise
        self.note(f"{what}: sent {sent}; VIPeX confirmed")
        return ""

    def read(self, what: str) -> PhonebookEntry:
        entry = self.client.get_phonebook_entry(self.vipex_id, self.number)
        fields = {o.field_id: o.field_value for o in entry.custom_field_options}
        name = entry.name if len(entry.name) <= 60 else f"{entry.name[:40]}... ({len(entry.name)})"
        self.note(
            f"read back after {what}: name={name!r} tags={list(entry.tags)!r} "
            f"comment={entry.comment!r} custom fields={fields!r}"
        )
        return entry

    def write_and_read(self, what: str, params: dict[str, object]) -> Answer:
        refusal = self.write(what, params, may_refuse=True)
        return refusal or self.read(what)


def _options(values: Sequence[tuple[int, str]]) -> list[dict[str, object]]:
    return [{"field_id": fid, "field_value": value} for fid, value in values]


def _experiment(rec: _Recorder, fields: tuple[CustomField, ...]) -> ProbeAnswers:
    sent = tuple((f.field_id, value) for f in fields if (value := probe_value(f)) is not None)
    full: dict[str, object] = {
        "name": CREATE_NAME,
        "tags": PROBE_TAG,
        "comment": PROBE_COMMENT,
        "custom_field_options": _options(sent),
    }
    rec.write("create with every field", full)
    created = rec.read("the create")
    left_out = sent[0][0] if sent else None
    rec.write(
        "update leaving out comment" + (f" and custom field {left_out}" if sent else ""),
        {"name": UPDATED_NAME, "tags": PROBE_TAG, "custom_field_options": _options(sent[1:])},
    )
    omitted = rec.read("the update with fields left out")
    rec.write("update with comment = ''", {**full, "comment": ""})
    emptied = rec.read("the update with an empty comment")
    padded = rec.write_and_read("padded name", {**full, "name": PADDED_NAME})
    non_nfc = rec.write_and_read("non-NFC name", {**full, "name": NON_NFC_NAME})
    long = rec.write_and_read(f"{len(LONG_NAME)}-character name", {**full, "name": LONG_NAME})
    return ProbeAnswers(sent, left_out, created, omitted, emptied, padded, non_nfc, long, "")


def _clean_up(rec: _Recorder) -> str | None:
    """Delete the test entry and confirm it is gone; the not-found answer, or None on failure."""
    try:
        existed = rec.client.del_phonebook_entry(rec.vipex_id, rec.number)
        rec.note("deleted the test entry" if existed else "the test entry was not there")
    except ApiError as exc:
        rec.note(f"DELETE FAILED: {exc}")
        return None
    try:
        rec.client.get_phonebook_entry(rec.vipex_id, rec.number)
    except ApiResultError as gone:
        rec.note(f"confirmed gone; VIPeX answers a missing number with: {gone.reason}")
        return gone.reason or "(result 0 without a reason)"
    except ApiError as exc:
        rec.note(f"could not confirm the delete: {exc}")
        return None
    rec.note("THE TEST ENTRY IS STILL THERE after its delete was confirmed")
    return None


def run_probe(
    client: VipexClient,
    vipex_id: str,
    number: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[ProbeFindings, Interpretation]:
    """Run the experiment on ``number``; raises ProbeError if it cannot finish."""
    rec = _Recorder(client, vipex_id, number)
    try:
        existing = client.get_phonebook_entry(vipex_id, number)
    except ApiResultError as absent:
        rec.note(f"the number is free (VIPeX: {absent.reason})")
    else:
        raise ProbeError(
            f"probe number {number} already exists in subscription {vipex_id} "
            f"(name {existing.name!r}); the probe only uses a number that is not in the "
            "phonebook. Choose another with --number or [vipex] probe_number"
        )
    fields = client.get_phonebook_custom_field_list(vipex_id)
    rec.note(f"{len(fields)} custom field(s) defined")
    failure: BaseException | None = None
    answers: ProbeAnswers | None = None
    try:
        answers = _experiment(rec, fields)
    except BaseException as exc:  # clean up on anything, Ctrl-C included
        failure = exc
        rec.note(f"step failed: {type(exc).__name__}: {exc}")
    not_found = _clean_up(rec)
    if not_found is None:
        log.error(
            "probe: THE TEST ENTRY %s MAY STILL BE IN SUBSCRIPTION %s. Delete it by hand: "
            "vipexsync api del_phonebook_entry vipex_id=%s phonenumber=%s",
            number,
            vipex_id,
            vipex_id,
            number,
        )
        raise ProbeError(
            f"the probe could not delete its test entry {number} from subscription {vipex_id}; "
            f"delete it by hand: vipexsync api del_phonebook_entry vipex_id={vipex_id} "
            f"phonenumber={number}"
        ) from failure
    if failure is not None or answers is None:
        if isinstance(failure, KeyboardInterrupt):
            raise failure
        raise ProbeError(
            f"the probe on {number} did not finish ({failure}); its test entry was deleted "
            "and nothing was recorded. Run it again once VIPeX answers"
        ) from failure
    result = interpret(replace(answers, not_found=not_found))
    findings = ProbeFindings(
        vipex_id=vipex_id,
        semantics=result.semantics,
        probed_at=clock(),
        phonenumber=number,
        not_found_answer=not_found,
        steps=tuple(rec.steps),
    )
    return findings, result


def probe_command(config: Config, job_name: str | None, number: str | None) -> ProbeFindings:
    """``vipexsync probe``: run the experiment, record the findings, print them."""
    job = config.job(job_name) if job_name else config.jobs[0]
    chosen = number or config.vipex.probe_number or DEFAULT_PROBE_NUMBER
    checked = check_probe_number(chosen)
    origin = (
        "--number"
        if number
        else "[vipex] probe_number"
        if config.vipex.probe_number
        else "the default (Ofcom's drama range, never a real line)"
    )
    print(
        f"Probing subscription {job.vipex_id} (job {job.name}) on test number {checked} "
        f"({origin}); the entry is created, changed and deleted."
    )
    engine = create_engine_for(config.database.url)
    # Holding the job's lock keeps the job's own runs from meeting the test
    # entry (a full resync with delete = "all" would delete it mid-probe).
    lock = job_lock(config.database.url, job.name)
    try:
        ensure_schema(engine, auto_upgrade=config.database.auto_upgrade)
        if not lock.acquire():
            raise LockHeldError(job.name, lock.where)
        try:
            with VipexClient.from_config(config.vipex) as client:
                findings, result = run_probe(client, job.vipex_id, checked)
        finally:
            lock.release()
        with make_session_factory(engine)() as session:
            save_findings(session, findings)
            session.commit()
    finally:
        engine.dispose()
    print(f"Write semantics of subscription {job.vipex_id}: {findings.semantics.describe()}")
    for note in result.notes:
        print(f"  - {note}")
    print(f"Recorded in the mirror database; the test entry {checked} was deleted.")
    if config.vipex.write_semantics != "probe":
        print(
            f"Note: [vipex] write_semantics = {config.vipex.write_semantics!r} overrides the "
            "probed omission rule; remove it to follow the probe."
        )
    return findings
