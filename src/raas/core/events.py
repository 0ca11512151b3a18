"""raas events: a CloudEvents 1.0 JSON envelope with typed `data` for each kind of fact.

Validation lives here as types; `raas.ingest` applies it at the boundary and turns failures into
errors that name the event, the field and the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec

from raas.core.canonical import canonical_bytes, leaf_hash

SPEC_VERSION: Final = "1.0"
TYPE_PREFIX: Final = "dev.raas."

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
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


class _Data(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Base of every event's typed data."""


class ConversationStarted(_Data, frozen=True):
    channel: Channel


class ConversationClosed(_Data, frozen=True):
    reason: Text | None = None


class Message(_Data, frozen=True):
    role: Role
    text: LongText = ""


class ModelCall(_Data, frozen=True):
    tier: Text
    model: Text
    input_tokens: Count
    output_tokens: Count
    latency_ms: Milliseconds
    cost: Decimal
    currency: Currency = "USD"
    time_to_first_token_ms: Milliseconds | None = None

    def __post_init__(self) -> None:
        _require_money(self.cost, "cost")


class ToolCall(_Data, frozen=True):
    name: Text
    ok: bool = True
    latency_ms: Milliseconds = 0


class Handoff(_Data, frozen=True):
    context_passed: bool
    reason: Text | None = None


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
}
TYPE_OF: Final[dict[type[_Data], str]] = {cls: name for name, cls in DATA_TYPES.items()}


class Event(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One fact in a CloudEvents 1.0 envelope; raas extension attributes sit beside the core ones.

    `tenant` is the buyer organisation the work is done for; `customer`, `conversation` and
    `intent` place the fact in an episode. `intent` may be absent on conversation-level facts.
    """

    specversion: Literal["1.0"]
    id: Text
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    type: Text
    time: UtcTime
    tenant: Text
    customer: Text
    conversation: Text
    data: Any
    intent: Text | None = None
    subject: Text | None = None
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


_to_builtins_order: Final = "sorted"


def event_entry(event: Event) -> bytes:
    """The canonical bytes of an event: what the ledger stores and the Merkle leaf commits to.

    Time is normalised to UTC so the same instant always gives the same bytes; absent optional
    attributes are left out rather than written as null.
    """
    plain = msgspec.to_builtins(event, order=_to_builtins_order)
    plain["time"] = _render_time(event.time)
    return canonical_bytes(plain, checked=False)


def event_leaf_hash(event: Event) -> bytes:
    return leaf_hash(event_entry(event))


def _render_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"
