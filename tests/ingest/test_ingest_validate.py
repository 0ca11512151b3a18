"""The ingest boundary turns wire bytes into typed events, or names every bad event exactly.

What would break: a bad event slipping through (wrong type, missing field, naive time, negative
money, unknown field, unknown event type), an error that names the wrong event or field, a batch
with one bad event being half accepted, a float sneaking into money, or the size bounds not holding.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.events import (
    DATA_TYPES,
    DISPUTE_CUSTOMER,
    NO_NUL_PATTERN,
    BusinessEvent,
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    DisputeFiled,
    DisputeRuled,
    Event,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    ReviewVerdict,
    ToolCall,
    make_event,
)
from raas.errors import BatchRejected, EventError
from raas.ingest import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, parse_batch, parse_event, validate

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

ONE_OF_EACH_TYPE = [
    ConversationStarted(channel="chat"),
    ConversationClosed(reason="done"),
    Message(role="customer", text='Where is my parcel? \u00e9\U0001f600 "quoted"'),
    ModelCall(
        tier="small",
        model="llama-3.1-8b",
        input_tokens=812,
        output_tokens=95,
        latency_ms=420,
        cost=Decimal("0.000412"),
        time_to_first_token_ms=80,
    ),
    ToolCall(name="lookup_order", ok=False, latency_ms=33),
    Handoff(context_passed=True, reason="angry customer"),
    ResolutionClaimed(by="human_agent"),
    CustomerConfirmation(resolved=True),
    Csat(score=5),
    Recontact(previous_conversation="conversation-0"),
    ReviewVerdict(passed=False, reviewer="qa-7", note="wrong refund policy quoted"),
    BusinessEvent(kind="order", amount=Decimal("129.90"), currency="EUR", reference="A-1"),
    HoldoutAssignment(group="control", experiment="q4-holdout"),
    DisputeFiled(
        dispute_id="D-1",
        invoice_id="acme-support-v3-2026-11",
        lines=(0,),
        episodes=("conversation-1#refund",),
        reason="the customer wrote again the next day",
        filed_by="finance@acme",
    ),
    DisputeRuled(dispute_id="D-1", ruling="upheld", ruled_by="reviewer-2", note="recontact"),
]


def event_of(data: Any, number: int = 0, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "id": f"event-{number}",
        "source": "urn:raas:test:agents",
        "time": START + timedelta(seconds=number),
        "tenant": "acme",
        "customer": "customer-1",
        "conversation": "conversation-1",
        "intent": "refund",
    }
    if isinstance(data, DisputeFiled | DisputeRuled):
        # A dispute sits in its own conversation of the disputes customer (ingest checks it).
        fields |= {"customer": DISPUTE_CUSTOMER, "conversation": data.dispute_id, "intent": None}
    fields.update(overrides)
    return make_event(data, **fields)


def wire(event: Event) -> dict[str, Any]:
    """An event as a sender would put it on the wire: a plain JSON object."""
    plain: dict[str, Any] = json.loads(msgspec.json.encode(event))
    return plain


def body_of(*objects: Any) -> bytes:
    return json.dumps(list(objects)).encode()


def only_error(body: bytes) -> EventError:
    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body)
    assert len(rejected.value.errors) == 1, rejected.value.errors
    return rejected.value.errors[0]


def test_every_event_type_round_trips_with_typed_data() -> None:
    events = [event_of(data, number) for number, data in enumerate(ONE_OF_EACH_TYPE)]
    assert {event.type for event in events} == set(DATA_TYPES)

    parsed = parse_batch(msgspec.json.encode(events))

    assert parsed == events
    assert [type(event.data) for event in parsed] == [type(data) for data in ONE_OF_EACH_TYPE]


def test_ndjson_gives_the_same_events_and_skips_blank_lines() -> None:
    events = [event_of(data, number) for number, data in enumerate(ONE_OF_EACH_TYPE)]
    lines = [msgspec.json.encode(event) for event in events]
    body = b"\n".join(lines[:3]) + b"\r\n\n  \n" + b"\n".join(lines[3:]) + b"\n"

    assert parse_batch(body, ndjson=True) == events


def test_parse_event_reads_one_object() -> None:
    event = event_of(ONE_OF_EACH_TYPE[3])
    assert parse_event(msgspec.json.encode(event)) == event


def test_money_given_as_a_json_number_stays_an_exact_decimal() -> None:
    plain = wire(event_of(ONE_OF_EACH_TYPE[3]))
    body = json.dumps([plain]).replace('"0.000412"', "0.10000000000000000555").encode()

    (event,) = parse_batch(body)

    assert event.data.cost == Decimal("0.10000000000000000555")
    assert isinstance(event.data.cost, Decimal)


def test_a_time_with_an_offset_is_kept_as_the_same_instant_in_utc() -> None:
    plain = wire(event_of(Csat(score=4)))
    plain["time"] = "2026-11-02T11:30:00.25+02:00"

    (event,) = parse_batch(body_of(plain))

    assert event.time == datetime(2026, 11, 2, 9, 30, 0, 250_000, tzinfo=UTC)
    assert event.time.tzinfo is UTC


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        # wrong field type, per event type
        ({"data": {"channel": "fax"}}, "data.channel", "Invalid enum value 'fax'"),
        (
            {"type": "dev.raas.message", "data": {"role": "customer", "text": 7}},
            "data.text",
            "Expected `str`, got `int`",
        ),
        (
            {
                "type": "dev.raas.model.call",
                "data": {
                    "tier": "small",
                    "model": "m",
                    "input_tokens": "812",
                    "output_tokens": 1,
                    "latency_ms": 1,
                    "cost": "0.1",
                },
            },
            "data.input_tokens",
            "Expected `int`, got `str`",
        ),
        (
            {
                "type": "dev.raas.model.call",
                "data": {
                    "tier": "small",
                    "model": "m",
                    "input_tokens": 1.5,
                    "output_tokens": 1,
                    "latency_ms": 1,
                    "cost": "0.1",
                },
            },
            "data.input_tokens",
            "Expected `int`, got `float`",
        ),
        ({"type": "dev.raas.csat", "data": {"score": 6}}, "data.score", "Expected `int` <= 5"),
        (
            {"type": "dev.raas.handoff", "data": {"context_passed": "yes"}},
            "data.context_passed",
            "Expected `bool`, got `str`",
        ),
        (
            {
                "type": "dev.raas.business.event",
                "data": {"kind": "order", "amount": "12.00", "currency": "euro"},
            },
            "data.currency",
            "Expected `str` matching regex '^[A-Z]{3}$'",
        ),
        # negative or non-finite money, refused by the data class's own check
        (
            {
                "type": "dev.raas.model.call",
                "data": {
                    "tier": "small",
                    "model": "m",
                    "input_tokens": 1,
                    "output_tokens": 1,
                    "latency_ms": 1,
                    "cost": "-0.01",
                },
            },
            "data.cost",
            "must be a finite, non-negative decimal, got -0.01",
        ),
        (
            {
                "type": "dev.raas.business.event",
                "data": {"kind": "refund", "amount": "NaN", "currency": "EUR"},
            },
            "data.amount",
            "must be a finite, non-negative decimal, got NaN",
        ),
        # missing fields, in the data and in the envelope
        ({"type": "dev.raas.csat", "data": {}}, "data.score", "is required but missing"),
        ({"customer": None}, "customer", "is required but missing"),  # None: left out
        ({"tenant": 7}, "tenant", "Expected `str`, got `int`"),
        ({"time": "2026-11-02T09:30:00"}, "time", "Expected `datetime` with a timezone component"),
        ({"time": "yesterday"}, "time", "Invalid RFC3339 encoded datetime"),
        ({"specversion": "0.3"}, "specversion", "Invalid enum value '0.3'"),
        ({"source": ""}, "source", "Expected `str` of length >= 1"),
        # unknown fields, in the data and in the envelope
        (
            {"data": {"channel": "chat", "colour": "red"}},
            "data.colour",
            "is not a field of this event type",
        ),
        ({"colour": "red"}, "colour", "is not a field of this event type"),
        ({"data": "chat"}, "data", "Expected `object`, got `str`"),
    ],
)
def test_a_bad_event_is_named_with_its_field_and_reason(
    change: dict[str, Any], field: str, reason: str
) -> None:
    good = wire(event_of(ConversationStarted(channel="chat"), 0))
    bad = wire(event_of(ConversationStarted(channel="chat"), 1)) | change
    bad = {name: value for name, value in bad.items() if value is not None}

    error = only_error(body_of(good, bad))

    assert (error.event_id, error.field, error.reason, error.index) == ("event-1", field, reason, 1)
    assert f"field {field!r}" in str(error)


def test_an_unknown_type_lists_the_known_ones() -> None:
    bad = wire(event_of(Csat(score=3))) | {"type": "dev.raas.refund"}

    error = only_error(body_of(bad))

    assert (error.event_id, error.field, error.index) == ("event-0", "type", 0)
    assert error.reason.startswith("'dev.raas.refund' is not a raas event type; expected one of: ")
    assert "dev.raas.csat" in error.reason


def test_a_missing_type_or_id_is_reported_and_a_missing_id_names_no_event() -> None:
    no_type = {k: v for k, v in wire(event_of(Csat(score=3), 0)).items() if k != "type"}
    no_id = {k: v for k, v in wire(event_of(Csat(score=3), 1)).items() if k != "id"}

    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body_of(no_type, no_id))

    found = [(e.event_id, e.field, e.reason, e.index) for e in rejected.value.errors]
    assert found == [
        ("event-0", "type", "is required but missing", 0),
        (None, "id", "is required but missing", 1),
    ]


def test_every_bad_event_of_a_batch_is_reported_in_order() -> None:
    objects = [wire(event_of(Csat(score=3), number)) for number in range(6)]
    objects[1]["data"] = {"score": 0}
    objects[4]["time"] = "2026-13-01T00:00:00Z"
    objects[5] = ["not", "an", "event"]

    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body_of(*objects))

    found = [(e.event_id, e.field, e.index) for e in rejected.value.errors]
    assert found == [("event-1", "data.score", 1), ("event-4", "time", 4), (None, "$", 5)]
    assert "and 2 more" in str(rejected.value)


def test_ndjson_errors_carry_the_event_position_and_bad_json_is_named() -> None:
    good = msgspec.json.encode(event_of(Csat(score=3), 0))
    bad_field = msgspec.json.encode(event_of(Csat(score=3), 1)).replace(b'"score":3', b'"score":9')
    body = b"\n".join([good, bad_field, b'{"id": "event-2", "type": '])

    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body, ndjson=True)

    first, second = rejected.value.errors
    assert (first.event_id, first.field, first.index) == ("event-1", "data.score", 1)
    assert (second.event_id, second.field, second.index) == (None, "$", 2)
    assert second.reason.startswith("is not valid JSON")


@pytest.mark.parametrize(
    ("body", "reason_start"),
    [
        (b'{"id": "x"}', "must be a JSON array of events: Expected `array`, got `object`"),
        (b"[1, 2", "is not valid JSON"),
        (b"", "is not valid JSON"),
    ],
)
def test_a_body_that_is_not_an_array_is_refused_as_a_whole(body: bytes, reason_start: str) -> None:
    error = only_error(body)
    assert (error.event_id, error.field, error.index) == (None, "body", None)
    assert error.reason.startswith(reason_start)


def test_an_empty_batch_is_an_empty_list() -> None:
    assert parse_batch(b"[]") == []
    assert parse_batch(b"\n\n", ndjson=True) == []


def test_batch_bounds_in_events_and_in_bytes() -> None:
    one = msgspec.json.encode(event_of(Csat(score=3)))
    at_limit = b"[" + b",".join([one] * BATCH_EVENTS_MAX) + b"]"
    assert len(parse_batch(at_limit)) == BATCH_EVENTS_MAX

    over = b"[" + b",".join([one] * (BATCH_EVENTS_MAX + 1)) + b"]"
    error = only_error(over)
    assert (error.field, error.reason) == (
        "body",
        "holds 10,001 events; a batch may hold at most 10,000",
    )
    with pytest.raises(BatchRejected, match="at most 10,000"):
        parse_batch(b"\n".join([one] * (BATCH_EVENTS_MAX + 1)), ndjson=True)

    too_big = b"[" + b" " * BATCH_BYTES_MAX + b"]"
    error = only_error(too_big)
    assert error.field == "body"
    assert error.reason.startswith(f"is {BATCH_BYTES_MAX + 2:,} bytes; a batch may hold at most")


def test_parse_event_raises_one_event_error() -> None:
    bad = wire(event_of(Csat(score=3))) | {"time": "2026-11-02T09:30:00"}
    with pytest.raises(EventError) as raised:
        parse_event(json.dumps(bad).encode())
    error = raised.value
    assert (error.event_id, error.field, error.index) == ("event-0", "time", None)


def test_a_very_long_id_is_cut_in_the_error() -> None:
    bad = wire(event_of(Csat(score=3))) | {"id": "x" * 5000}
    error = only_error(body_of(bad))
    assert error.field == "id"
    assert error.event_id == "x" * 256


# -- properties ------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=20)
# Ids and envelope attributes hold no NUL character (a valid event never has one there).
attributes = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)
datas = st.one_of(
    st.builds(
        Message, role=st.sampled_from(["customer", "ai", "human_agent"]), text=st.text(max_size=40)
    ),
    st.builds(
        ModelCall,
        tier=texts,
        model=texts,
        input_tokens=st.integers(0, 10**9),
        output_tokens=st.integers(0, 10**6),
        latency_ms=st.integers(0, 10**6),
        cost=st.decimals(min_value=0, max_value=10**6, places=6),
    ),
    st.builds(Csat, score=st.integers(1, 5)),
    st.builds(Handoff, context_passed=st.booleans(), reason=st.none() | texts),
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.builds(
            lambda data, id, time, customer, intent: make_event(
                data,
                id=id,
                source="urn:s",
                time=time,
                tenant="acme",
                customer=customer,
                conversation="c",
                intent=intent,
            ),
            datas,
            attributes,
            times,
            attributes,
            st.none() | attributes,
        ),
        max_size=8,
    )
)
def test_any_valid_events_survive_the_wire_unchanged(events: list[Event]) -> None:
    body = msgspec.json.encode(events)
    assert parse_batch(body) == events
    assert parse_batch(b"\n".join(msgspec.json.encode(e) for e in events), ndjson=True) == events


@settings(max_examples=200, deadline=None)
@given(
    good=st.integers(0, 5),
    bad_at=st.sets(st.integers(0, 5), min_size=1),
    mutation=st.sampled_from(
        [
            ("data", {"score": 0}, "data.score"),
            ("time", "2026-11-02", "time"),
            ("type", "dev.raas.nope", "type"),
            ("tenant", "", "tenant"),
            ("extra", 1, "extra"),
        ]
    ),
)
def test_any_bad_event_rejects_the_whole_batch_and_is_named(
    good: int, bad_at: set[int], mutation: tuple[str, Any, str]
) -> None:
    objects = [wire(event_of(Csat(score=3), number)) for number in range(6)]
    name, value, field = mutation
    for index in bad_at:
        objects[index][name] = value

    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body_of(*objects))

    found = [(e.event_id, e.field, e.index) for e in rejected.value.errors]
    assert found == [(f"event-{index}", field, index) for index in sorted(bad_at)]


def test_a_dispute_names_something_it_disputes() -> None:
    plain = wire(event_of(DisputeRuled(dispute_id="D-1", ruling="upheld", ruled_by="r")))
    plain["type"] = "dev.raas.dispute.filed"
    plain["data"] = {"dispute_id": "D-1", "invoice_id": "i", "reason": "r", "filed_by": "b"}

    error = only_error(body_of(plain))

    assert (error.field, error.reason) == (
        "data.lines",
        "a dispute names at least one line or one episode",
    )


def test_a_ruling_is_upheld_or_rejected() -> None:
    plain = wire(event_of(DisputeRuled(dispute_id="D-1", ruling="upheld", ruled_by="r")))
    plain["data"]["ruling"] = "maybe"

    error = only_error(body_of(plain))

    assert error.field == "data.ruling"
    assert "maybe" in error.reason


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"customer": "customer-1"}, "customer", "'raas:disputes'"),
        ({"conversation": "conversation-1"}, "conversation", "'D-1'"),
        ({"intent": "refund"}, "intent", "absent"),
    ],
)
def test_a_dispute_event_sits_in_its_own_conversation_of_the_disputes_customer(
    change: dict[str, str], field: str, expected: str
) -> None:
    """Settlement finds disputes there, and episodes must never take them in."""
    good = wire(event_of(ONE_OF_EACH_TYPE[-1], 0))
    bad = wire(event_of(ONE_OF_EACH_TYPE[-2], 1)) | change

    error = only_error(body_of(good, bad))
    with pytest.raises(EventError) as single:
        parse_event(json.dumps(bad).encode())

    assert (error.event_id, error.field, error.index) == ("event-1", field, 1)
    assert expected in error.reason
    assert (single.value.field, single.value.index) == (field, None)
    assert parse_event(json.dumps(good).encode()).data == ONE_OF_EACH_TYPE[-1]


@pytest.mark.parametrize(
    "field", ["id", "source", "tenant", "customer", "conversation", "intent", "subject"]
)
def test_a_nul_character_in_an_id_or_attribute_is_refused_naming_the_field(field: str) -> None:
    # PostgreSQL text cannot hold U+0000 and SQLite can: refused here, both stores see the same.
    good = wire(event_of(ConversationStarted(channel="chat"), 0))
    bad = wire(event_of(ConversationStarted(channel="chat"), 1)) | {field: "a\x00b"}

    error = only_error(body_of(good, bad))

    assert (error.field, error.index) == (field, 1)
    assert error.reason == "holds a NUL character (U+0000), which no ledger store can keep in an id"
    with pytest.raises(EventError, match=f"field '{field}': holds a NUL character"):
        parse_event(json.dumps(bad).encode())


@pytest.mark.parametrize("field", ["id", "customer"])
def test_a_nul_character_in_an_ndjson_line_is_refused_naming_the_line_and_field(
    field: str,
) -> None:
    # NDJSON lines are decoded without the no-NUL pattern unless the body holds the escape.
    good = wire(event_of(ConversationStarted(channel="chat"), 0))
    bad = wire(event_of(ConversationStarted(channel="chat"), 1)) | {field: "a\x00b"}
    body = json.dumps(good).encode() + b"\n" + json.dumps(bad).encode() + b"\n"
    assert b"\\u0000" in body

    with pytest.raises(BatchRejected) as rejected:
        parse_batch(body, ndjson=True)

    (error,) = rejected.value.errors
    assert (error.field, error.index) == (field, 1)
    assert error.reason == "holds a NUL character (U+0000), which no ledger store can keep in an id"


def test_a_nul_character_in_data_text_is_kept() -> None:
    # Only ids and attributes are stored as text columns; data lives inside the entry's bytes.
    sent = event_of(Message(role="customer", text="a\x00b"), 0)
    assert parse_batch(body_of(wire(sent))) == [sent]


def test_bodies_without_a_nul_escape_are_held_to_every_other_constraint() -> None:
    # parse_batch skips the no-NUL pattern for a body that holds no \u0000 escape (the only way
    # JSON can spell U+0000); every other constraint of every attribute must still apply there.
    def schemas(union: Any) -> list[dict[str, Any]]:
        _, components = msgspec.json.schema_components([list[union]])
        return [components[name] for name in sorted(components)]

    def without_nul_pattern(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: without_nul_pattern(item)
                for key, item in value.items()
                if not (key == "pattern" and item == NO_NUL_PATTERN)
            }
        if isinstance(value, list):
            return [without_nul_pattern(item) for item in value]
        return value

    strict = schemas(validate._AnyEnvelope)
    assert "pattern" in json.dumps(strict)  # the pattern is there to drop
    assert schemas(validate._AnyNulFreeEnvelope) == [
        {**without_nul_pattern(schema), "title": schema["title"].replace("Envelope", "NulFree")}
        for schema in strict
    ]
