"""Random workloads for the engine tests: several customers with conversations on random
channels and intents, handoffs with and without context, confirmations, CSAT, recontacts inside
and outside the window (some linked by a recontact event), reviews, orders and refunds (some in
another currency), holdout assignments; starting around November's edges, with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from factories import SOURCE, conversation, entries
from raas.core.episodes import Episode, derive_episodes
from raas.core.events import BusinessEvent, Event, HoldoutAssignment, ReviewVerdict, make_event

TENANT = "acme"
START = datetime(2026, 10, 28, 6, 0, tzinfo=UTC)
# The example contracts name some of these intents (test traffic, sales, refunds over limit).
INTENTS = ("refund", "billing", "sales_inquiry", "refund_over_limit", "test")
CHANNELS = ("chat", "email", "voice")


def extra(
    data: object, *, name: str, time: datetime, customer: str, conversation_id: str, intent: str
) -> Event:
    """One more event of a conversation: a review, an order, a holdout assignment."""
    return make_event(
        data,  # type: ignore[arg-type]
        id=name,
        source=SOURCE,
        time=time,
        tenant=TENANT,
        customer=customer,
        conversation=conversation_id,
        intent=intent,
    )


@st.composite
def workloads(draw: st.DrawFn, *, customers_max: int = 4) -> list[Event]:
    events: list[Event] = []
    number = 0
    for customer_number in range(draw(st.integers(1, customers_max))):
        customer = f"customer-{customer_number}"
        earlier: list[tuple[str, datetime]] = []
        for _ in range(draw(st.integers(1, 3))):
            conversation_id = f"c{number}"
            number += 1
            recontact_of = None
            if earlier and draw(st.booleans()):
                previous, previous_start = draw(st.sampled_from(earlier))
                gap = draw(
                    st.sampled_from(
                        [timedelta(minutes=30), timedelta(hours=71), timedelta(hours=75)]
                    )
                )
                start = previous_start + gap
                recontact_of = previous if draw(st.booleans()) else None
            else:
                start = START + timedelta(
                    hours=draw(st.integers(0, 24 * 40)),
                    microseconds=draw(st.integers(0, 999_999)),
                )
            intents = draw(st.lists(st.sampled_from(INTENTS), min_size=1, max_size=2, unique=True))
            events += conversation(
                conversation_id,
                customer=customer,
                intents=intents,
                start=start,
                tenant=TENANT,
                channel=draw(st.sampled_from(CHANNELS)),
                handoff=draw(st.sampled_from([None, None, "with", "without"])),
                confirm=draw(st.sampled_from([None, True, False])),
                csat=draw(st.one_of(st.none(), st.integers(1, 5))),
                recontact_of=recontact_of,
                ai_answers=draw(st.integers(1, 2)),
                model_cost=draw(st.sampled_from(["0.0100", "0.0035", "0.1234567"])),
                tier=draw(st.sampled_from(["small", "large"])),
            )
            earlier.append((conversation_id, start))
            later = start + timedelta(hours=1)
            if draw(st.booleans()):
                events.append(
                    extra(
                        ReviewVerdict(passed=draw(st.booleans()), reviewer="qa"),
                        name=f"{conversation_id}-review",
                        time=later,
                        customer=customer,
                        conversation_id=conversation_id,
                        intent=intents[0],
                    )
                )
            for index in range(draw(st.integers(0, 2))):
                kind = draw(st.sampled_from(["order", "order", "refund", "subscription"]))
                events.append(
                    extra(
                        BusinessEvent(
                            kind=kind,
                            amount=Decimal(
                                draw(st.sampled_from(["25.00", "19.99", "0.5", "1E+2"]))
                            ),
                            currency=draw(st.sampled_from(["USD", "USD", "EUR"])),
                            # Two events may share a reference: a refund of an order.
                            reference=draw(st.sampled_from([None, f"order-{conversation_id}"])),
                        ),
                        name=f"{conversation_id}-business-{index}",
                        time=later + timedelta(minutes=index),
                        customer=customer,
                        conversation_id=conversation_id,
                        intent=intents[-1],
                    )
                )
        if draw(st.booleans()):
            events.append(
                extra(
                    HoldoutAssignment(
                        group=draw(st.sampled_from(["treatment", "control"])), experiment="e1"
                    ),
                    name=f"{customer}-holdout",
                    time=START,
                    customer=customer,
                    conversation_id=earlier[0][0],
                    intent=INTENTS[0],
                )
            )
    return events


def reference_episodes(events: list[Event], link_horizon: timedelta) -> list[Episode]:
    """The episodes the pure core derives, customer by customer."""
    by_customer: dict[str, list[Event]] = {}
    for event in events:
        by_customer.setdefault(event.customer, []).append(event)
    return [
        episode
        for customer_events in by_customer.values()
        for episode in derive_episodes(entries(customer_events), link_horizon=link_horizon)
    ]
