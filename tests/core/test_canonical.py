"""Canonical entries: the bytes every leaf hash commits to. If these drift, every proof an
auditor holds stops verifying, so they are pinned by golden vectors (personal fields as salted
commitments included) and checked against an independent RFC 8785 implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.canonical import INTEGER_ABS_MAX, canonical_bytes, leaf_hash
from raas.core.commitments import reveal
from raas.core.events import (
    Event,
    Handoff,
    Message,
    ModelCall,
    ReviewVerdict,
    entry_and_disclosures,
    event_entry,
    make_event,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-INTEGER_ABS_MAX, INTEGER_ABS_MAX)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="ascii"), max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_bytes_equal_an_independent_rfc8785_implementation(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "float is not allowed"),
        ({"k": 2**53}, "outside the I-JSON range"),
        ({"é": 1}, "must be ASCII"),
        ({1: 1}, "is not a string"),
    ],
)
def test_values_without_one_canonical_form_are_refused(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        canonical_bytes(value)


def test_leaf_hash_is_rfc6962() -> None:
    assert leaf_hash(b"") == bytes.fromhex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()


# The ledger's commitment key for the golden vectors (a real ledger's is secret and random).
GOLDEN_KEY = bytes(range(32))
GOLDEN_MESSAGE = (
    b'{"conversation":"conv-1","customer":"cust-9","data":{"role":"customer",'
    b'"text":"sha256:399c2858abe9925e92953cb434340466b57b4faea1fba47265d96c61489b09a6"},'
    b'"id":"evt-1","intent":"order_status","source":"urn:raas:helpdesk-ai:agents",'
    b'"specversion":"1.0","tenant":"acme","time":"2026-11-02T08:00:00.250000Z",'
    b'"type":"dev.raas.message"}'
)
GOLDEN_MESSAGE_DISCLOSURES = (
    b'{"data.text":{"salt":"1lxYeF4bwHYfHsV5pHIQyg==",'
    b'"value":"Where is my order? \\"#42\\"\\n\xc3\xa9"}}'
)
GOLDEN_MODEL_CALL = (
    b'{"conversation":"conv-1","customer":"cust-9","data":{"cost":"0.00123","input_tokens":812,'
    b'"latency_ms":412,"model":"llama-3.1-8b-q4","output_tokens":96,"tier":"small"},'
    b'"id":"evt-2","source":"urn:raas:helpdesk-ai:agents","specversion":"1.0","tenant":"acme",'
    b'"time":"2026-11-02T08:00:01Z","type":"dev.raas.model.call"}'
)
MESSAGE_TEXT = 'Where is my order? "#42"\né'


def golden_events() -> tuple[Event, Event]:
    berlin = timezone(timedelta(hours=1))
    message = make_event(
        Message(role="customer", text=MESSAGE_TEXT),
        id="evt-1",
        source="urn:raas:helpdesk-ai:agents",
        time=datetime(2026, 11, 2, 9, 0, 0, 250000, tzinfo=berlin),
        tenant="acme",
        customer="cust-9",
        conversation="conv-1",
        intent="order_status",
    )
    model_call = make_event(
        ModelCall(
            tier="small",
            model="llama-3.1-8b-q4",
            input_tokens=812,
            output_tokens=96,
            latency_ms=412,
            cost=Decimal("0.00123"),
        ),
        id="evt-2",
        source="urn:raas:helpdesk-ai:agents",
        time=datetime(2026, 11, 2, 8, 0, 1, tzinfo=UTC),
        tenant="acme",
        customer="cust-9",
        conversation="conv-1",
    )
    return message, model_call


def test_golden_entries() -> None:
    """Byte vectors an auditor in another language can reproduce from the JSON alone.

    These changed once, when personal fields became commitments and times took six fraction
    digits (msgspec's RFC 3339 form); any other change breaks every proof already handed out.
    """
    message, model_call = golden_events()
    assert entry_and_disclosures(message, GOLDEN_KEY) == (
        GOLDEN_MESSAGE,
        GOLDEN_MESSAGE_DISCLOSURES,
    )
    assert event_entry(model_call, GOLDEN_KEY) == GOLDEN_MODEL_CALL
    assert entry_and_disclosures(model_call, GOLDEN_KEY)[1] == b"{}"
    assert leaf_hash(GOLDEN_MESSAGE).hex() == (
        "7d72bc88f2b06564bbd73941dbec4fab1ddc5fd200d38446bbc9793f48bfc3b9"
    )
    assert leaf_hash(GOLDEN_MODEL_CALL).hex() == (
        "c564d948494094c8fbb4dd531ecf8c24b61278aea972f02b5127e0fa22312b39"
    )


def test_the_golden_commitment_recomputes_from_the_written_rule() -> None:
    """The salt and commitment, rebuilt with the standard library from the docstring's rule.

    If the salt derivation drifted, an event sent again after an upgrade would get another
    entry and be refused as a conflict; if the commitment did, disclosures would stop verifying.
    """
    key_material = json.dumps(
        ["acme", "urn:raas:helpdesk-ai:agents", "evt-1", "data.text"], separators=(",", ":")
    ).encode()
    salt = hmac.new(GOLDEN_KEY, key_material, hashlib.sha256).digest()[:16]
    assert base64.b64encode(salt) == b"1lxYeF4bwHYfHsV5pHIQyg=="
    text_commitment = hashlib.sha256(salt + MESSAGE_TEXT.encode("utf-8")).hexdigest()
    plain = json.loads(GOLDEN_MESSAGE)
    assert plain["data"]["text"] == "sha256:" + text_commitment
    assert json.loads(GOLDEN_MESSAGE_DISCLOSURES) == {
        "data.text": {"salt": base64.b64encode(salt).decode(), "value": MESSAGE_TEXT}
    }
    assert rfc8785.dumps(plain) == GOLDEN_MESSAGE
    assert rfc8785.dumps(json.loads(GOLDEN_MESSAGE_DISCLOSURES)) == GOLDEN_MESSAGE_DISCLOSURES


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(2026, 11, 2, 9, 30, tzinfo=UTC), "2026-11-02T09:30:00Z"),
        (datetime(2026, 11, 2, 9, 30, 0, 120_000, tzinfo=UTC), "2026-11-02T09:30:00.120000Z"),
        (datetime(2026, 11, 2, 9, 30, 0, 1, tzinfo=UTC), "2026-11-02T09:30:00.000001Z"),
        (
            datetime(2026, 11, 2, 6, 30, 0, 500_000, tzinfo=timezone(timedelta(hours=-3))),
            "2026-11-02T09:30:00.500000Z",
        ),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00Z"),
        (datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Berlin")), "2026-03-29T01:00:00Z"),
    ],
)
def test_times_are_written_in_utc_with_six_fraction_digits_or_none(
    moment: datetime, written: str
) -> None:
    _, model_call = golden_events()
    entry = event_entry(msgspec.structs.replace(model_call, time=moment), GOLDEN_KEY)
    assert json.loads(entry)["time"] == written


texts = st.text(max_size=20)
short_texts = st.text(min_size=1, max_size=12)
# Ids and attributes refuse NUL at the boundary (PostgreSQL cannot store it); data may hold it.
ids = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
event_data = st.one_of(
    st.builds(Message, role=st.sampled_from(["customer", "ai"]), text=texts),
    st.builds(ReviewVerdict, passed=st.booleans(), reviewer=short_texts, note=st.none() | texts),
    st.builds(Handoff, context_passed=st.booleans(), reason=st.none() | short_texts),
    st.builds(
        ModelCall,
        tier=short_texts,
        model=short_texts,
        input_tokens=st.integers(0, 2**53 - 1),
        output_tokens=st.integers(0, 10**6),
        latency_ms=st.integers(0, 10**6),
        cost=st.decimals(min_value=0, max_value=10**6, places=9),
    ),
)
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45))]),
)


@settings(max_examples=300)
@given(data=event_data, moment=moments, name=ids, intent=st.none() | ids)
def test_entries_and_disclosures_are_rfc8785_and_reveal_the_event(
    data: Any, moment: datetime, name: str, intent: str | None
) -> None:
    original = make_event(
        data,
        id=name,
        source=name + ":source",
        time=moment,
        tenant=name,
        customer='"time":"',
        conversation=name,
        intent=intent,
        subject=name,
    )
    entry, disclosures = entry_and_disclosures(original, GOLDEN_KEY)
    assert rfc8785.dumps(json.loads(entry)) == entry
    assert rfc8785.dumps(json.loads(disclosures)) == disclosures
    assert reveal(entry, disclosures) == original
    # The same event always gives the same bytes: appends stay idempotent.
    assert entry_and_disclosures(original, GOLDEN_KEY) == (entry, disclosures)
