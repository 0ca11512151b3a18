"""Builders for small, readable workloads in tests: one call per conversation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from raas.core.disputes import dispute_event
from raas.core.episodes import Entry
from raas.core.events import (
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
    event_leaf_hash,
    make_event,
)
from raas.core.invoice import Invoice
from raas.ledger.store import TEST_COMMITMENT_KEY

SOURCE = "urn:raas:test:agents"
# The key personal fields are salted with: MemoryLedger's, so leaf hashes here match its entries.
COMMITMENT_KEY = TEST_COMMITMENT_KEY
NOVEMBER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def conversation(
    conversation_id: str,
    *,
    customer: str = "customer-1",
    intents: Iterable[str] = ("refund",),
    start: datetime = NOVEMBER,
    tenant: str = "acme",
    channel: str = "chat",
    handoff: str | None = None,
    confirm: bool | None = None,
    csat: int | None = None,
    recontact_of: str | None = None,
    ai_answers: int = 1,
    model_cost: str = "0.0100",
    tier: str = "small",
    latency_ms: int = 300,
    review: bool | None = None,
    orders: Iterable[str] = (),
    currency: str = "USD",
) -> list[Event]:
    """A conversation in which the AI answers each intent; a minute passes between events.

    `handoff` is None, "with" or "without" (context passed to the human). The AI's last answer
    for an intent is at a time the test can read back from the returned events. `review` adds a
    reviewer's verdict on each intent; `orders` adds an order of each amount (decimal text) on
    the last intent, with the reference `<conversation>-order-<n>`.
    """
    events: list[Event] = []
    clock = start
    counter = 0

    def add(data: object, intent: str | None) -> None:
        nonlocal clock, counter
        events.append(
            make_event(
                data,  # type: ignore[arg-type]
                id=f"{conversation_id}-{counter}",
                source=SOURCE,
                time=clock,
                tenant=tenant,
                customer=customer,
                conversation=conversation_id,
                intent=intent,
            )
        )
        counter += 1
        clock += timedelta(minutes=1)

    add(ConversationStarted(channel=channel), None)  # type: ignore[arg-type]
    for intent in intents:
        if recontact_of is not None:
            add(Recontact(previous_conversation=recontact_of), intent)
        add(Message(role="customer", text=f"I need help with {intent}"), intent)
        if handoff is not None:
            add(Handoff(context_passed=handoff == "with"), intent)
            add(Message(role="human_agent", text="A person here."), intent)
            continue
        for _ in range(ai_answers):
            add(
                ModelCall(
                    tier=tier,
                    model=f"{tier}-model",
                    input_tokens=100,
                    output_tokens=50,
                    latency_ms=latency_ms,
                    cost=Decimal(model_cost),
                ),
                intent,
            )
            add(Message(role="ai", text=f"Here is how to solve {intent}."), intent)
        add(ResolutionClaimed(by="ai"), intent)
        if confirm is not None:
            add(CustomerConfirmation(resolved=confirm), intent)
        if csat is not None:
            add(Csat(score=csat), intent)
        if review is not None:
            add(ReviewVerdict(passed=review, reviewer="qa-1"), intent)
    for number, amount in enumerate(orders):
        order = BusinessEvent(
            kind="order",
            amount=Decimal(amount),
            currency=currency,
            reference=f"{conversation_id}-order-{number}",
        )
        add(order, None)
    add(ConversationClosed(), None)
    return events


def holdout(
    customer: str,
    group: str,
    *,
    at: datetime = NOVEMBER - timedelta(days=1),
    tenant: str = "acme",
    experiment: str = "campaign-1",
) -> Event:
    """A customer's assignment to the treatment or the control group of a holdout."""
    return make_event(
        HoldoutAssignment(group=group, experiment=experiment),  # type: ignore[arg-type]
        id=f"holdout-{customer}",
        source=SOURCE,
        time=at,
        tenant=tenant,
        customer=customer,
        conversation=f"holdout-{customer}",
    )


def business(
    conversation_id: str,
    amounts: Iterable[str],
    *,
    customer: str,
    start: datetime = NOVEMBER,
    tenant: str = "acme",
    kind: str = "order",
    currency: str = "USD",
) -> list[Event]:
    """A conversation the AI took no part in (a purchase in a shop, a branch visit) that
    records business events of the given amounts, a minute apart."""
    events: list[Event] = []
    for number, amount in enumerate(amounts):
        events.append(
            make_event(
                BusinessEvent(
                    kind=kind,  # type: ignore[arg-type]
                    amount=Decimal(amount),
                    currency=currency,
                    reference=f"{conversation_id}-{kind}-{number}",
                ),
                id=f"{conversation_id}-{number}",
                source=SOURCE,
                time=start + timedelta(minutes=number),
                tenant=tenant,
                customer=customer,
                conversation=conversation_id,
            )
        )
    return events


def last_ai_answer(events: list[Event], intent: str) -> datetime:
    return max(
        event.time
        for event in events
        if event.intent == intent
        and (
            (isinstance(event.data, Message) and event.data.role == "ai")
            or isinstance(event.data, ResolutionClaimed)
        )
    )


def entries(events: Iterable[Event]) -> list[Entry]:
    return [Entry(event, event_leaf_hash(event, COMMITMENT_KEY)) for event in events]


def filing(
    number: int,
    invoice: Invoice,
    *,
    at: datetime,
    episodes: Sequence[str] = (),
    lines: Sequence[int] = (),
) -> Event:
    """The buyer's dispute D-<number> of lines or episodes of `invoice`."""
    data = DisputeFiled(
        dispute_id=f"D-{number}",
        invoice_id=invoice.id,
        lines=tuple(lines),
        episodes=tuple(episodes),
        reason="the customer was not helped",
        filed_by="finance@acme",
    )
    return dispute_event(data, id=f"filed-{number}", source=SOURCE, time=at, tenant=invoice.buyer)


def ruling(number: int, ruling: str, *, at: datetime, tenant: str = "acme") -> Event:
    """A reviewer's ruling (upheld or rejected) on dispute D-<number>."""
    data = DisputeRuled(dispute_id=f"D-{number}", ruling=ruling, ruled_by="reviewer")  # type: ignore[arg-type]
    return dispute_event(data, id=f"ruled-{number}", source=SOURCE, time=at, tenant=tenant)
