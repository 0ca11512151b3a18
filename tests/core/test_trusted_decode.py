"""Entries read back from a ledger decode to the events `decode_entry` gives, without their
checks run again. What would break: an episode table derived from events that differ from the
reference's (a field dropped or defaulted, data of another class), or a bad entry read as an
event instead of refused."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from raas.core.canonical import leaf_hash
from raas.core.events import (
    Event,
    Message,
    _TrustedEnvelope,
    decode_entry,
    decode_trusted_entry,
    event_entry,
    make_event,
)
from raas.errors import StoreError
from raas.ingest import parse_batch
from raas.sim import SimConfig, Simulation

KEY = bytes(32)


def test_every_kind_of_entry_decodes_to_the_event_decode_entry_gives() -> None:
    events = [
        event
        for batch in Simulation(SimConfig(seed=7, conversations=120)).ndjson_batches()
        for event in parse_batch(batch, ndjson=True)
    ]
    events.append(
        msgspec.structs.replace(
            make_event(
                Message(role="customer", text="hello"),
                id="e-1",
                source="urn:test",
                time=datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=UTC),
                tenant="acme",
                customer="customer-1",
                conversation="c1",
                intent="refund",
                subject="ticket-9",
            ),
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            datacontenttype="application/json",
        )
    )
    kinds = {event.type for event in events}
    assert len(kinds) >= 12, kinds  # the simulation's month holds nearly every kind
    for event in events:
        entry = event_entry(event, KEY)
        assert decode_trusted_entry(entry) == decode_entry(entry)


def test_the_trusted_envelope_holds_every_field_of_an_event() -> None:
    # A field added to Event but not here would be dropped from every entry read back.
    assert set(_TrustedEnvelope.__struct_fields__) == set(Event.__struct_fields__)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ((b'"type":"dev.raas.message"', b'"type":"dev.raas.unknown"'), "unknown"),
        ((b'"role":"customer"', b'"role":7'), "role"),
        ((b'"conversation":"c1",', b""), "conversation"),
        ((b'"acme"', b'"ac\xffme"'), "UTF-8"),
    ],
)
def test_an_entry_that_is_not_an_event_is_refused_naming_its_leaf(
    change: tuple[bytes, bytes], why: str
) -> None:
    entry = event_entry(
        make_event(
            Message(role="customer", text="hello"),
            id="e-1",
            source="urn:test",
            time=datetime(2026, 11, 2, 9, tzinfo=UTC),
            tenant="acme",
            customer="customer-1",
            conversation="c1",
        ),
        KEY,
    )
    bad = entry.replace(*change)
    assert bad != entry, why
    with pytest.raises(StoreError, match=f"leaf hash {leaf_hash(bad).hex()}"):
        decode_trusted_entry(bad)
