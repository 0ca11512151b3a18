"""raas events: a CloudEvents 1.0 JSON envelope with typed `data` for each kind of fact.

Validation lives here as types; `raas.ingest` applies it at the boundary and turns failures into
errors that name the event, the field and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any, Final, Literal

import msgspec

from raas.core.canonical import leaf_hash
from raas.core.commitments import (
    EMPTY_DISCLOSURES,
    PERSONAL_FIELDS,
    Disclosure,
    encode_disclosures,
    salted_commitment,
)
from raas.errors import EventError, StoreError

SPEC_VERSION: Final = "1.0"
TYPE_PREFIX: Final = "dev.raas."

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# A string with no NUL character (U+0000): PostgreSQL text cannot hold one, so ids and the
# envelope's attributes refuse it at the boundary, the same on every store.
NO_NUL_PATTERN: Final = "^[^\\x00]*$"
Attribute = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)]
LongText = Annotated[str, msgspec.Meta(max_length=64_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
Milliseconds = Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600 * 1000)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]

Channel = Literal["chat", "email", "voice"]
Role = Literal["customer", "ai", "human_agent"]


def _require_money(value: Decimal, field: str) -> None:
    # msgspec reports a ValueError raised here as a validation error at this struct's path.
    if not value.is_finite() or value < 0:
        raise ValueError(f"`{field}` must be a finite, non-negative decimal, got {value}")


# gc=False on events and their data: they hold text, numbers, times and frozen data, so never
# a reference cycle; untracked, the garbage collector does not walk the thousands of them each
# ingested batch makes (measured: 1.3 us an event of ingest's CPU time).
class _Data(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    """Base of every event's typed data."""


class ConversationStarted(_Data, frozen=True):
    channel: Channel


class ConversationClosed(_Data, frozen=True):
    reason: Text | None = None


class Message(_Data, frozen=True):
    role: Role
    text: LongText = ""


TierName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class RouteDecision(_Data, frozen=True):
    """Why a call went to its tier: the router's rule, the policy it served (`target 0.8`,
    `budget 0.01`), each tier's estimated P(resolved) (decimals, as entries hold no floats), the
    guardrail that forced the tier if one did, the tiers failed earlier in the episode, and the
    attempt (2 and up after a fallback)."""

    tier: TierName
    rule: Text
    policy: Text
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    probabilities: dict[TierName, Decimal] = {}
    confidence: Decimal = Decimal(0)
    guardrail: Text | None = None
    excluded: tuple[TierName, ...] = ()
    attempt: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1

    def __post_init__(self) -> None:
        for name, value in (*self.probabilities.items(), ("confidence", self.confidence)):
            if not value.is_finite() or not 0 <= value <= 1:
                raise ValueError(f"`{name}` must be a decimal in [0, 1], got {value}")


class ModelCall(_Data, frozen=True):
    tier: Text
    model: Text
    input_tokens: Count
    output_tokens: Count
    latency_ms: Milliseconds
    cost: Decimal
    currency: Currency = "USD"
    time_to_first_token_ms: Milliseconds | None = None
    decision: RouteDecision | None = None
    error: Text | None = None  # the call failed (timeout, HTTP 500, ...)
    usage_counted: bool = False  # raas counted the tokens: the upstream reported none

    def __post_init__(self) -> None:
        _require_money(self.cost, "cost")


class ToolCall(_Data, frozen=True):
    name: Text
    ok: bool = True
    latency_ms: Milliseconds = 0


class Handoff(_Data, frozen=True):
    context_passed: bool
    reason: Text | None = None
    decision: RouteDecision | None = None


class ResolutionClaimed(_Data, frozen=True):
    by: Literal["ai", "human_agent"] = "ai"


class CustomerConfirmation(_Data, frozen=True):
    resolved: bool


class Csat(_Data, frozen=True):
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]


class Recontact(_Data, frozen=True):
    """The customer came back about a problem first raised in `previous_conversation`."""

    previous_conversation: Text


class ReviewVerdict(_Data, frozen=True):
    passed: bool
    reviewer: Text
    note: LongText | None = None


class BusinessEvent(_Data, frozen=True):
    kind: Literal["order", "refund", "subscription"]
    amount: Decimal
    currency: Currency
    reference: Text | None = None

    def __post_init__(self) -> None:
        _require_money(self.amount, "amount")


class HoldoutAssignment(_Data, frozen=True):
    group: Literal["treatment", "control"]
    experiment: Text


# Disputes are facts about an issued invoice, not about a customer: their envelope names this
# customer and the dispute id as its conversation (`raas.core.disputes.dispute_event`), and
# episodes never include them.
DISPUTE_CUSTOMER: Final = "raas:disputes"
DisputeItems = Annotated[tuple[Text, ...], msgspec.Meta(max_length=10_000)]
LineNumbers = Annotated[
    tuple[Annotated[int, msgspec.Meta(ge=0, le=100_000)], ...], msgspec.Meta(max_length=10_000)
]


class DisputeFiled(_Data, frozen=True):
    """The buyer disputes lines of an issued invoice (their positions in its `lines`, from 0)
    and/or episodes billed on it, for a reason."""

    dispute_id: Text
    invoice_id: Text
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=64_000)]
    filed_by: Text
    lines: LineNumbers = ()
    episodes: DisputeItems = ()

    def __post_init__(self) -> None:
        if not self.lines and not self.episodes:
            raise ValueError("`lines` a dispute names at least one line or one episode")


class DisputeRuled(_Data, frozen=True):
    """A reviewer's ruling on a filed dispute: upheld disputes are credited on the next invoice."""

    dispute_id: Text
    ruling: Literal["upheld", "rejected"]
    ruled_by: Text
    note: LongText | None = None


EventData = (
    ConversationStarted
    | ConversationClosed
    | Message
    | ModelCall
    | ToolCall
    | Handoff
    | ResolutionClaimed
    | CustomerConfirmation
    | Csat
    | Recontact
    | ReviewVerdict
    | BusinessEvent
    | HoldoutAssignment
    | DisputeFiled
    | DisputeRuled
)

# The CloudEvents `type` of each data class; the only place the two are tied together.
DATA_TYPES: Final[dict[str, type[_Data]]] = {
    TYPE_PREFIX + "conversation.started": ConversationStarted,
    TYPE_PREFIX + "conversation.closed": ConversationClosed,
    TYPE_PREFIX + "message": Message,
    TYPE_PREFIX + "model.call": ModelCall,
    TYPE_PREFIX + "tool.call": ToolCall,
    TYPE_PREFIX + "handoff": Handoff,
    TYPE_PREFIX + "resolution.claimed": ResolutionClaimed,
    TYPE_PREFIX + "customer.confirmation": CustomerConfirmation,
    TYPE_PREFIX + "csat": Csat,
    TYPE_PREFIX + "recontact": Recontact,
    TYPE_PREFIX + "review.verdict": ReviewVerdict,
    TYPE_PREFIX + "business.event": BusinessEvent,
    TYPE_PREFIX + "holdout.assignment": HoldoutAssignment,
    TYPE_PREFIX + "dispute.filed": DisputeFiled,
    TYPE_PREFIX + "dispute.ruled": DisputeRuled,
}
TYPE_OF: Final[dict[type[_Data], str]] = {cls: name for name, cls in DATA_TYPES.items()}


class Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
):
    """One fact in a CloudEvents 1.0 envelope; raas extension attributes sit beside the core ones.

    `tenant` is the buyer organisation the work is done for; `customer`, `conversation` and
    `intent` place the fact in an episode. `intent` may be absent on conversation-level facts.
    """

    specversion: Literal["1.0"]
    id: Attribute
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL_PATTERN)]
    type: Text
    time: UtcTime
    tenant: Attribute
    customer: Attribute
    conversation: Attribute
    data: Any
    intent: Attribute | None = None
    subject: Attribute | None = None
    datacontenttype: Literal["application/json"] | None = None
    traceparent: Text | None = None

    @property
    def utc_time(self) -> datetime:
        return self.time.astimezone(UTC)


def make_event(
    data: _Data,
    *,
    id: str,
    source: str,
    time: datetime,
    tenant: str,
    customer: str,
    conversation: str,
    intent: str | None = None,
    subject: str | None = None,
) -> Event:
    """Build an event from typed data; the CloudEvents `type` follows from the data's class."""
    if time.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return Event(
        specversion="1.0",
        id=id,
        source=source,
        type=TYPE_OF[type(data)],
        time=time.astimezone(UTC),
        tenant=tenant,
        customer=customer,
        conversation=conversation,
        intent=intent,
        subject=subject,
        data=data,
    )


# -- entries: the bytes the ledger stores and the Merkle leaf commits to -----------------------


def _personal_data_fields() -> dict[str, tuple[tuple[str, str, Any], ...]]:
    """For each event type with personal fields: (field path, data attribute, its default)."""
    fields: dict[str, tuple[tuple[str, str, Any], ...]] = {}
    for type_name, paths in PERSONAL_FIELDS.items():
        defaults = {
            field.name: field.default for field in msgspec.structs.fields(DATA_TYPES[type_name])
        }
        specs = []
        for path in paths:
            name = path.removeprefix("data.")
            # Commitments replace text inside `data` only; reveal and the entry builder rely on it.
            assert path == f"data.{name}" and name in defaults, path
            specs.append((path, name, defaults[name]))
        fields[type_name] = tuple(specs)
    return fields


_PERSONAL_DATA_FIELDS: Final = _personal_data_fields()
_TYPE: Final = attrgetter("type")
_DATA: Final = attrgetter("data")
_TIME: Final = attrgetter("time")
_TZINFO: Final = attrgetter("tzinfo")
_entry_encoder: Final = msgspec.json.Encoder(order="sorted")
_replace: Final = msgspec.structs.replace


def entry_and_disclosures(event: Event, commitment_key: bytes) -> tuple[bytes, bytes]:
    """The canonical entry of an event and its disclosures (see `raas.core.commitments`).

    The entry is RFC 8785 JSON of the CloudEvent: keys sorted, no whitespace, absent optional
    attributes and default data fields left out (never null), integers as JSON integers, decimals
    as JSON strings of their exact text, and the time in UTC as "YYYY-MM-DDTHH:MM:SS", then
    "." and exactly six digits of microseconds only if those are not zero, then "Z" (RFC 3339,
    four-digit year). Each personal field holds its salted commitment instead of its value; the
    disclosures hold the values. The commitment key makes the salts (`field_salt`).

    Raises EventError for a naive time, or for data whose class is not the one its type names
    (only an event built in-process without `make_event` can have either).
    """
    committed, disclosures = _committed(event, commitment_key)
    return _entry_encoder.encode(committed), disclosures


def entries_and_disclosures(
    events: Sequence[Event], commitment_key: bytes
) -> tuple[list[bytes], list[bytes]]:
    """`entry_and_disclosures` of each event, in order: the same bytes, a batch at a time.

    Ingest's way: the checks and the encoding are mapped over the whole batch with C functions,
    so only events with personal fields (or all of a batch holding an odd event: a time not in
    UTC, data of another class than its type names) cost an interpreter frame each.
    """
    types = list(map(_TYPE, events))
    plain = not set(map(_TZINFO, map(_TIME, events))) - {UTC} and list(
        map(type, map(_DATA, events))
    ) == list(map(DATA_TYPES.get, types))
    places: Iterable[int] = (
        [place for place, name in enumerate(types) if name in _PERSONAL_DATA_FIELDS]
        if plain
        else range(len(events))
    )
    to_encode = list(events)
    disclosures = [EMPTY_DISCLOSURES] * len(events)
    for place in places:
        to_encode[place], disclosures[place] = _committed(events[place], commitment_key)
    return list(map(_entry_encoder.encode, to_encode)), disclosures


def _committed(event: Event, commitment_key: bytes) -> tuple[Event, bytes]:
    """The event whose canonical bytes are its entry (its time in UTC, its personal fields
    holding their commitments) and its disclosures; raises as `entry_and_disclosures` says."""
    moment = event.time
    if moment.tzinfo is not UTC:
        if moment.utcoffset() is None:
            raise EventError(event.id, "time", "must be timezone-aware")
        event = _replace(event, time=moment.astimezone(UTC))
    data = event.data
    if DATA_TYPES.get(event.type) is not type(data):
        raise EventError(
            event.id,
            "data",
            f"is a {type(data).__name__}, but an event of type {event.type!r} holds "
            f"{getattr(DATA_TYPES.get(event.type), '__name__', 'no known data')}",
        )
    personal = _PERSONAL_DATA_FIELDS.get(event.type)
    if personal is None:
        return event, EMPTY_DISCLOSURES
    committed: dict[str, str] = {}
    disclosed: dict[str, Disclosure] = {}
    for path, name, default in personal:
        value = getattr(data, name)
        if value == default:
            continue
        salt, committed[name] = salted_commitment(
            commitment_key, event.tenant, event.source, event.id, path, value
        )
        disclosed[path] = Disclosure(salt=salt, value=value)
    if not committed:
        return event, EMPTY_DISCLOSURES
    return _replace(event, data=_replace(data, **committed)), encode_disclosures(disclosed)


def event_entry(event: Event, commitment_key: bytes) -> bytes:
    """The canonical bytes of an event that the ledger stores and the Merkle leaf commits to.

    Personal fields hold salted commitments made with `commitment_key`; the rule is spelled out
    in `entry_and_disclosures`, which also gives the cleartext values.
    """
    return entry_and_disclosures(event, commitment_key)[0]


def event_leaf_hash(event: Event, commitment_key: bytes) -> bytes:
    """The RFC 6962 leaf hash of the event's entry."""
    return leaf_hash(entry_and_disclosures(event, commitment_key)[0])


_stored_event_decoder: Final = msgspec.json.Decoder(Event)
# UnicodeDecodeError: msgspec raises it, not DecodeError, for a string that is not UTF-8.
_UNDECODABLE: Final = (msgspec.ValidationError, msgspec.DecodeError, KeyError, UnicodeDecodeError)


def _undecodable(entry: bytes, error: Exception) -> StoreError:
    return StoreError(
        f"the entry with leaf hash {leaf_hash(entry).hex()} does not decode as a raas event: "
        f"{error}"
    )


def decode_entry(entry: bytes) -> Event:
    """The typed event behind a stored entry; personal fields hold their commitments.

    Entries were validated on the way in, so this decodes without the ingest boundary's error
    collection: the envelope first (its `data` untyped), then `data` by the class its `type` names.
    Decimals are strings in entries, so no float ever touches money here.
    """
    try:
        envelope = _stored_event_decoder.decode(entry)
        data_class = DATA_TYPES[envelope.type]
        data = msgspec.convert(envelope.data, data_class)
    except _UNDECODABLE as error:
        raise _undecodable(entry, error) from error
    return _replace(envelope, data=data)


class _TrustedEnvelope(msgspec.Struct, frozen=True, gc=False):
    """An entry's envelope as `Event` holds it, without its constraints (checked on the way in),
    and its `data` left as bytes for the decoder of the class its type names."""

    specversion: str
    id: str
    source: str
    type: str
    time: datetime
    tenant: str
    customer: str
    conversation: str
    data: msgspec.Raw
    intent: str | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    traceparent: str | None = None


_trusted_envelope_decoder: Final = msgspec.json.Decoder(_TrustedEnvelope)
_data_decoders: Final = {name: msgspec.json.Decoder(cls) for name, cls in DATA_TYPES.items()}


def decode_trusted_entry(entry: bytes) -> Event:
    """`decode_entry` for an entry read back from a ledger, which checked it on the way in: the
    same event, in half the time (the envelope's patterns and lengths are not checked again, and
    `data` is decoded once, into its class, rather than into a dict first and then converted).
    An entry that is not JSON of that shape still raises StoreError."""
    try:
        envelope = _trusted_envelope_decoder.decode(entry)
        data = _data_decoders[envelope.type].decode(envelope.data)
    except _UNDECODABLE as error:
        raise _undecodable(entry, error) from error
    return Event(
        specversion=envelope.specversion,  # type: ignore[arg-type]
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        time=envelope.time,
        tenant=envelope.tenant,
        customer=envelope.customer,
        conversation=envelope.conversation,
        data=data,
        intent=envelope.intent,
        subject=envelope.subject,
        datacontenttype=envelope.datacontenttype,  # type: ignore[arg-type]
        traceparent=envelope.traceparent,
    )
