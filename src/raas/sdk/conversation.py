"""Typed helpers for each raas event, bound to one conversation: the SDK's way to record facts.

The same helpers serve both clients: the sync client's return None, the async client's return a
coroutine to await. Each builds the event (a fresh id unless given one, the time now unless
given one) and hands it to the client, which checks it at once and queues it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, Literal, TypeVar

from raas.core.events import (
    BusinessEvent,
    Channel,
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    Event,
    EventData,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    ReviewVerdict,
    Role,
    ToolCall,
    make_event,
)

R = TypeVar("R", covariant=True)
Money = Decimal | str | int


def _money(value: Money, field: str) -> Decimal:
    # Money never passes through a float: 0.1 + 0.2 would already be wrong before it is sent.
    if isinstance(value, float) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"`{field}` must be a Decimal, str or int, not {type(value).__name__}")
    return Decimal(value)


class Conversation(Generic[R]):
    """One conversation of one customer (and, optionally, the problem it is about: `intent`)."""

    def __init__(
        self,
        record: Callable[[Event], R],
        *,
        tenant: str,
        source: str,
        customer: str,
        conversation: str,
        intent: str | None = None,
    ) -> None:
        self._record = record
        self.tenant = tenant
        self.source = source
        self.customer = customer
        self.conversation = conversation
        self.intent = intent

    def about(self, intent: str | None) -> Conversation[R]:
        """The same conversation about another problem (a new episode in it)."""
        return Conversation(
            self._record,
            tenant=self.tenant,
            source=self.source,
            customer=self.customer,
            conversation=self.conversation,
            intent=intent,
        )

    def record(
        self,
        data: EventData,
        *,
        time: datetime | None = None,
        id: str | None = None,
        subject: str | None = None,
    ) -> R:
        """Record any event data in this conversation; the helpers below call this."""
        return self._record(
            make_event(
                data,
                id=id or uuid.uuid4().hex,
                source=self.source,
                time=time or datetime.now(UTC),
                tenant=self.tenant,
                customer=self.customer,
                conversation=self.conversation,
                intent=self.intent,
                subject=subject,
            )
        )

    def started(
        self, channel: Channel = "chat", *, time: datetime | None = None, id: str | None = None
    ) -> R:
        return self.record(ConversationStarted(channel=channel), time=time, id=id)

    def closed(
        self, reason: str | None = None, *, time: datetime | None = None, id: str | None = None
    ) -> R:
        return self.record(ConversationClosed(reason=reason), time=time, id=id)

    def message(
        self, role: Role, text: str = "", *, time: datetime | None = None, id: str | None = None
    ) -> R:
        return self.record(Message(role=role, text=text), time=time, id=id)

    def model_call(
        self,
        *,
        tier: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: int,
        cost: Money,
        currency: str = "USD",
        time_to_first_token_ms: int | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        data = ModelCall(
            tier=tier,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=latency_ms,
            cost=_money(cost, "cost"),
            currency=currency,
            time_to_first_token_ms=time_to_first_token_ms,
        )
        return self.record(data, time=time, id=id)

    def tool_call(
        self,
        name: str,
        *,
        ok: bool = True,
        latency_ms: int = 0,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        return self.record(ToolCall(name=name, ok=ok, latency_ms=latency_ms), time=time, id=id)

    def handoff(
        self,
        *,
        context_passed: bool,
        reason: str | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        data = Handoff(context_passed=context_passed, reason=reason)
        return self.record(data, time=time, id=id)

    def resolution_claimed(
        self,
        by: Literal["ai", "human_agent"] = "ai",
        *,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        return self.record(ResolutionClaimed(by=by), time=time, id=id)

    def confirmation(
        self, *, resolved: bool, time: datetime | None = None, id: str | None = None
    ) -> R:
        return self.record(CustomerConfirmation(resolved=resolved), time=time, id=id)

    def csat(self, score: int, *, time: datetime | None = None, id: str | None = None) -> R:
        return self.record(Csat(score=score), time=time, id=id)

    def recontact(
        self, previous_conversation: str, *, time: datetime | None = None, id: str | None = None
    ) -> R:
        data = Recontact(previous_conversation=previous_conversation)
        return self.record(data, time=time, id=id)

    def review_verdict(
        self,
        *,
        passed: bool,
        reviewer: str,
        note: str | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        data = ReviewVerdict(passed=passed, reviewer=reviewer, note=note)
        return self.record(data, time=time, id=id)

    def business_event(
        self,
        kind: Literal["order", "refund", "subscription"],
        *,
        amount: Money,
        currency: str,
        reference: str | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        data = BusinessEvent(
            kind=kind, amount=_money(amount, "amount"), currency=currency, reference=reference
        )
        return self.record(data, time=time, id=id)

    def holdout(
        self,
        group: Literal["treatment", "control"],
        *,
        experiment: str,
        time: datetime | None = None,
        id: str | None = None,
    ) -> R:
        data = HoldoutAssignment(group=group, experiment=experiment)
        return self.record(data, time=time, id=id)
