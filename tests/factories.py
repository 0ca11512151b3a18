"""Builders for small, readable workloads in tests: one call per conversation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from raas.core.episodes import Entry
from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    Event,
    Handoff,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    event_leaf_hash,
    make_event,
)
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
) -> list[Event]:
    """A conversation in which the AI answers each intent; a minute passes between events.

    `handoff` is None, "with" or "without" (context passed to the human). The AI's last answer
    for an intent is at a time the test can read back from the returned events.
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
                    latency_ms=300,
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
    add(ConversationClosed(), None)
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
