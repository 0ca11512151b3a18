"""Canonical entries: the bytes every leaf hash commits to. If these drift, every proof an
auditor holds stops verifying, so they are pinned by golden vectors and checked against an
independent RFC 8785 implementation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from raas.core.canonical import INTEGER_ABS_MAX, canonical_bytes, leaf_hash
from raas.core.events import Message, ModelCall, event_entry, make_event

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


GOLDEN_MESSAGE = (
    b'{"conversation":"conv-1","customer":"cust-9","data":{"role":"customer",'
    b'"text":"Where is my order? \\"#42\\"\\n\xc3\xa9"},"id":"evt-1","intent":"order_status",'
    b'"source":"urn:raas:helpdesk-ai:agents","specversion":"1.0","tenant":"acme",'
    b'"time":"2026-11-02T08:00:00.25Z","type":"dev.raas.message"}'
)
GOLDEN_MODEL_CALL = (
    b'{"conversation":"conv-1","customer":"cust-9","data":{"cost":"0.00123","input_tokens":812,'
    b'"latency_ms":412,"model":"llama-3.1-8b-q4","output_tokens":96,"tier":"small"},'
    b'"id":"evt-2","source":"urn:raas:helpdesk-ai:agents","specversion":"1.0","tenant":"acme",'
    b'"time":"2026-11-02T08:00:01Z","type":"dev.raas.model.call"}'
)


def test_golden_entries() -> None:
    """Byte vectors an auditor in another language can reproduce from the JSON alone."""
    berlin = timezone(timedelta(hours=1))
    message = make_event(
        Message(role="customer", text='Where is my order? "#42"\né'),
        id="evt-1",
        source="urn:raas:helpdesk-ai:agents",
        time=datetime(2026, 11, 2, 9, 0, 0, 250000, tzinfo=berlin),
        tenant="acme",
        customer="cust-9",
        conversation="conv-1",
        intent="order_status",
    )
    assert event_entry(message) == GOLDEN_MESSAGE
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
    assert event_entry(model_call) == GOLDEN_MODEL_CALL
    assert leaf_hash(GOLDEN_MESSAGE).hex() == (
        "4af52c9c3b0a9a5ba204484582eb06549ad87cbab31dfb0c0b1ca614d987c1f6"
    )
    assert leaf_hash(GOLDEN_MODEL_CALL).hex() == (
        "c564d948494094c8fbb4dd531ecf8c24b61278aea972f02b5127e0fa22312b39"
    )
