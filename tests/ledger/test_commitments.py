"""Commitments to personal fields: redacting a field never breaks an entry, and a disclosure that
does not match its entry is named and refused.

What would break: a personal field reaching the entry in cleartext (it could not be redacted
without changing the leaf), a disclosure accepted with a changed value, salt or spelling, a
disclosure for a field the entry does not commit to, salts that depend on anything but the key
and the field's place (idempotency lost, or guesses testable without the key), or the list of
personal fields naming a field the events do not have.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.canonical import leaf_hash
from raas.core.commitments import (
    EMPTY_DISCLOSURES,
    PERSONAL_FIELDS,
    DisclosureError,
    commitment,
    decode_disclosures,
    field_salt,
    redact,
    reveal,
    verify_disclosure,
)
from raas.core.events import (
    DATA_TYPES,
    Csat,
    Event,
    Message,
    ReviewVerdict,
    decode_entry,
    entries_and_disclosures,
    entry_and_disclosures,
    make_event,
)
from raas.errors import EventError, StoreError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def message(text: str = "my email is ada@example.com", *, id: str = "m-1") -> Event:
    return make_event(
        Message(role="customer", text=text),
        id=id,
        source="urn:raas:test",
        time=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        tenant="acme",
        customer="c-1",
        conversation="v-1",
    )


def verdict(note: str | None) -> Event:
    return make_event(
        ReviewVerdict(passed=False, reviewer="qa-7", note=note),
        id="r-1",
        source="urn:raas:test",
        time=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        tenant="acme",
        customer="c-1",
        conversation="v-1",
    )


def test_the_personal_fields_are_text_fields_of_the_events_they_name() -> None:
    for type_name, paths in PERSONAL_FIELDS.items():
        fields = {field.name: field for field in msgspec.structs.fields(DATA_TYPES[type_name])}
        for path in paths:
            head, _, name = path.partition(".")
            assert head == "data" and name in fields, path
            assert "str" in str(fields[name].type), (path, fields[name].type)
    assert PERSONAL_FIELDS["dev.raas.message"] == ("data.text",)
    assert PERSONAL_FIELDS["dev.raas.review.verdict"] == ("data.note",)


def test_an_entry_holds_the_commitment_and_the_disclosures_the_value() -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)

    assert b"ada@example.com" not in entry
    salt = field_salt(KEY, "acme", "urn:raas:test", "m-1", "data.text")
    assert json.loads(entry)["data"]["text"] == commitment(salt, "my email is ada@example.com")
    assert json.loads(disclosures) == {
        "data.text": {
            "salt": base64.b64encode(salt).decode(),
            "value": "my email is ada@example.com",
        }
    }
    verify_disclosure(entry, disclosures)
    assert reveal(entry, disclosures) == message()


def test_redacting_leaves_the_entry_and_its_leaf_as_they_were() -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)
    redacted = redact(disclosures)

    assert redacted == EMPTY_DISCLOSURES
    assert redact(disclosures, keep={"data.text"}) == disclosures
    verify_disclosure(entry, redacted)
    revealed = reveal(entry, redacted)
    assert revealed.data.text == json.loads(entry)["data"]["text"]  # the commitment stays
    assert leaf_hash(entry) == leaf_hash(entry_and_disclosures(message(), KEY)[0])


def test_salts_depend_on_the_key_and_the_fields_place_only() -> None:
    salt = field_salt(KEY, "acme", "urn:raas:test", "m-1", "data.text")
    assert salt == field_salt(KEY, "acme", "urn:raas:test", "m-1", "data.text")
    assert len(salt) == 16
    others = {
        field_salt(OTHER_KEY, "acme", "urn:raas:test", "m-1", "data.text"),
        field_salt(KEY, "globex", "urn:raas:test", "m-1", "data.text"),
        field_salt(KEY, "acme", "urn:raas:other", "m-1", "data.text"),
        field_salt(KEY, "acme", "urn:raas:test", "m-2", "data.text"),
        field_salt(KEY, "acme", "urn:raas:test", "m-1", "data.note"),
        # Canonical JSON keeps the parts apart: no shifting of text between them collides.
        field_salt(KEY, "acme", "urn:raas:testm", "-1", "data.text"),
    }
    assert salt not in others and len(others) == 6
    # The same text under another key commits differently: without the key, a guess is untestable.
    assert (
        entry_and_disclosures(message(), KEY)[0] != entry_and_disclosures(message(), OTHER_KEY)[0]
    )


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        field_salt(b"short", "acme", "s", "i", "data.text")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d | {"data.text": d["data.text"] | {"value": "my email is eve@example.com"}},
         "data.text", "do not hash"),
        (lambda d: d | {"data.text": d["data.text"] | {"salt": "AAAAAAAAAAAAAAAAAAAAAA=="}},
         "data.text", "do not hash"),
        (lambda d: d | {"data.text": d["data.text"] | {"salt": "AAAAAAAAAAAAAAAAAAAA"}},
         "data.text", "15 bytes"),
        (lambda d: d | {"data.text": d["data.text"] | {"salt": "not base64!"}},
         "data.text", "not base64"),
        (lambda d: d | {"data.role": d["data.text"]}, "data.role", "not a personal field"),
        (lambda d: {"data.text": {"salt": d["data.text"]["salt"]}}, "$", "not a JSON object"),
    ],
)  # fmt: skip
def test_a_disclosure_that_does_not_match_is_named(change: object, field: str, reason: str) -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)
    changed = rfc8785.dumps(change(json.loads(disclosures)))  # type: ignore[operator]
    with pytest.raises(DisclosureError, match=reason) as refused:
        verify_disclosure(entry, changed)
    assert refused.value.field == field
    with pytest.raises(DisclosureError):
        reveal(entry, changed)


def test_disclosures_have_one_spelling() -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)
    for spelled in (
        disclosures.replace(b":", b": ", 1),
        disclosures.replace(b"==", b"=A", 1),  # still base64 of other bytes, or not base64
        json.dumps(json.loads(disclosures), ensure_ascii=True).encode(),
    ):
        with pytest.raises(DisclosureError):
            verify_disclosure(entry, spelled)


def test_bytes_that_are_not_utf8_get_the_raas_error_naming_the_entry() -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)
    # Inside a string, where msgspec reads text: a UnicodeDecodeError unless it is caught.
    bad_entry = entry.replace(b'"acme"', b'"ac\xffme"')
    bad_disclosures = disclosures.replace(b'"my ', b'"m\xffy ')
    assert bad_entry != entry and bad_disclosures != disclosures
    with pytest.raises(StoreError, match=f"leaf hash {leaf_hash(bad_entry).hex()}"):
        decode_entry(bad_entry)
    with pytest.raises(DisclosureError, match="not a JSON object") as refused:
        decode_disclosures(bad_disclosures)
    assert refused.value.field == "$"
    for entry_bytes, disclosure_bytes in ((bad_entry, disclosures), (entry, bad_disclosures)):
        with pytest.raises(DisclosureError):
            verify_disclosure(entry_bytes, disclosure_bytes)


def test_a_base64_salt_with_stray_padding_bits_is_refused() -> None:
    entry, disclosures = entry_and_disclosures(message(), KEY)
    plain = json.loads(disclosures)
    salt = plain["data.text"]["salt"]
    # 16 bytes take 22 base64 digits and "=="; the last digit carries 4 padding bits, which a
    # lax decoder ignores: flip the lowest and the bytes stay the same.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stray = salt[:21] + alphabet[alphabet.index(salt[21]) ^ 1] + "=="
    assert base64.b64decode(stray) == base64.b64decode(salt) and stray != salt
    plain["data.text"]["salt"] = stray
    spelled = rfc8785.dumps(plain)
    with pytest.raises(DisclosureError, match="salt"):
        verify_disclosure(entry, spelled)


def test_an_entry_must_hold_a_commitment_where_a_personal_field_is() -> None:
    plain = json.loads(entry_and_disclosures(message(), KEY)[0])
    plain["data"]["text"] = "my email is ada@example.com"
    cleartext_entry = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(DisclosureError, match="not a sha256: commitment") as refused:
        verify_disclosure(cleartext_entry, EMPTY_DISCLOSURES)
    assert refused.value.field == "data.text"


def test_default_personal_fields_have_no_commitment_and_accept_no_disclosure() -> None:
    entry, disclosures = entry_and_disclosures(verdict(None), KEY)
    assert disclosures == EMPTY_DISCLOSURES and b"note" not in entry
    assert reveal(entry, disclosures) == verdict(None)
    noted_entry, noted = entry_and_disclosures(verdict("rude to the customer"), KEY)
    with pytest.raises(DisclosureError, match="commits to no value") as refused:
        verify_disclosure(entry, noted)
    assert refused.value.field == "data.note"
    assert reveal(noted_entry, noted) == verdict("rude to the customer")
    empty_message = message("")
    assert entry_and_disclosures(empty_message, KEY)[1] == EMPTY_DISCLOSURES


def test_events_without_personal_fields_are_untouched() -> None:
    csat = msgspec.structs.replace(message(), type="dev.raas.csat", data=Csat(score=4))
    entry, disclosures = entry_and_disclosures(csat, KEY)
    assert disclosures == EMPTY_DISCLOSURES
    assert decode_entry(entry) == csat == reveal(entry, disclosures)
    assert decode_disclosures(disclosures) == {}


@settings(max_examples=200)
@given(
    text=st.text(min_size=1, max_size=200),
    guess=st.text(min_size=1, max_size=200),
    # Event ids hold no NUL character: ingest refuses one (PostgreSQL cannot store it).
    id=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20),
)
def test_only_the_committed_value_opens_a_commitment(text: str, guess: str, id: str) -> None:
    entry, disclosures = entry_and_disclosures(message(text, id=id), KEY)
    assert reveal(entry, disclosures).data.text == text
    plain = json.loads(disclosures)
    plain["data.text"]["value"] = guess
    forged = rfc8785.dumps(plain)
    if guess == text:
        verify_disclosure(entry, forged)
    else:
        with pytest.raises(DisclosureError, match="do not hash"):
            verify_disclosure(entry, forged)


def _any_event(number: int, kind: int, text: str, offset_hours: int) -> Event:
    data = (
        Message(role="customer", text=text),
        ReviewVerdict(passed=True, reviewer="qa", note=text or None),
        Csat(score=3),
    )[kind]
    event = make_event(
        data,
        id=f"e-{number}",
        source="urn:raas:test",
        time=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        tenant=("acme", "globex")[number % 2],
        customer="c-1",
        conversation="v-1",
    )
    moment = event.time.astimezone(timezone(timedelta(hours=offset_hours)))
    return msgspec.structs.replace(event, time=moment)


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["", "ada@example.com", "\u00e9"])),
        max_size=30,
    ),
    st.sampled_from([0, 0, 0, 2]),
)
def test_a_batch_gets_the_entries_and_disclosures_its_events_get_one_by_one(
    kinds: list[tuple[int, str]], offset_hours: int
) -> None:
    # The batch path (ingest's) against the one-event path: personal fields set, at their
    # defaults and absent, mixed in any order, and times not in UTC (which both convert).
    events = [
        _any_event(number, kind, text, offset_hours) for number, (kind, text) in enumerate(kinds)
    ]
    one_by_one = [entry_and_disclosures(event, KEY) for event in events]
    entries, disclosures = entries_and_disclosures(events, KEY)
    assert list(zip(entries, disclosures, strict=True)) == one_by_one


def test_a_batch_with_an_event_whose_data_is_not_its_type_is_refused_naming_it() -> None:
    wrong = msgspec.structs.replace(message(id="m-2"), type="dev.raas.csat")
    with pytest.raises(EventError, match=r"'m-2'.*Message, but an event of type 'dev\.raas\.csat'"):
        entries_and_disclosures([message(), wrong], KEY)
