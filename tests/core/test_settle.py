"""Settlement invariants from DESIGN.md, as properties of the pure pipeline: a failure here means
a bill that depends on delivery accidents, or a total that is not the sum of its lines."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_judge import contract

from factories import NOVEMBER, conversation, entries, last_ai_answer
from raas.core.episodes import Entry
from raas.core.events import Event
from raas.core.invoice import LedgerPoint, invoice_json
from raas.core.periods import month_period
from raas.core.settle import settle

PERIOD = month_period("Europe/Berlin", 2026, 11)
LEDGER = LedgerPoint(tenant="acme", size=0)


def by_customer(events: Iterable[Event]) -> list[list[Entry]]:
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries(events):
        groups[entry.event.customer].append(entry)
    return list(groups.values())


def settled(events: Iterable[Event], window_hours: int = 72):  # type: ignore[no-untyped-def]
    return settle(contract(window_hours), by_customer(events), period=PERIOD, ledger=LEDGER)


conversation_specs = st.lists(
    st.fixed_dictionaries(
        {
            "customer": st.integers(0, 4),
            "intents": st.lists(
                st.sampled_from(["refund", "delivery", "password", "invoice"]),
                min_size=1,
                max_size=3,
                unique=True,
            ),
            "start_minutes": st.integers(-3 * 24 * 60, 33 * 24 * 60),
            "handoff": st.sampled_from([None, None, None, "with", "without"]),
            "confirm": st.sampled_from([None, None, True, False]),
            "recontact_previous": st.booleans(),
        }
    ),
    min_size=1,
    max_size=12,
)


def workload(specs: list[dict]) -> list[Event]:  # type: ignore[type-arg]
    events: list[Event] = []
    last_by_customer: dict[int, str] = {}
    for number, spec in enumerate(specs):
        conversation_id = f"conv-{number}"
        previous = last_by_customer.get(spec["customer"])
        events += conversation(
            conversation_id,
            customer=f"customer-{spec['customer']}",
            intents=spec["intents"],
            start=NOVEMBER + timedelta(minutes=spec["start_minutes"]),
            handoff=spec["handoff"],
            confirm=spec["confirm"],
            recontact_of=previous if spec["recontact_previous"] else None,
        )
        last_by_customer[spec["customer"]] = conversation_id
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=conversation_specs, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_duplicates_and_arrival_order_never_change_the_invoice(specs, seed, data) -> None:  # type: ignore[no-untyped-def]
    events = workload(specs)
    expected = invoice_json(settled(events).invoice)
    rng = random.Random(seed)
    twice = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    redelivered = events + twice
    rng.shuffle(redelivered)
    assert invoice_json(settled(redelivered).invoice) == expected


@settings(max_examples=150, deadline=None)
@given(specs=conversation_specs)
def test_total_is_the_sum_of_lines_and_lines_are_quantity_times_price(specs) -> None:  # type: ignore[no-untyped-def]
    invoice = settled(workload(specs)).invoice
    assert invoice.total == sum(line.amount for line in invoice.lines)
    for line in invoice.lines:
        assert line.amount == (line.unit_price * line.quantity).quantize(Decimal("0.01"))
        assert line.quantity == len(line.episodes) == len(set(line.episodes))
    billed = [episode for line in invoice.lines for episode in line.episodes]
    assert len(billed) == len(set(billed)), "an episode is billed on one line only"


def test_hand_checked_invoice() -> None:
    """Five problems: 3 AI resolutions (one confirmed, one assumed, one recontact after the
    window), 1 handoff, 1 recontact inside the window: 3 x 0.99 = 2.97 USD."""
    confirmed = conversation("a", customer="ann", confirm=True)
    assumed = conversation("b", customer="bob", intents=("delivery",))
    handed_off = conversation("c", customer="cat", handoff="with")
    reopened = conversation("d", customer="dan")
    back_soon = conversation(
        "d2",
        customer="dan",
        recontact_of="d",
        start=last_ai_answer(reopened, "refund") + timedelta(hours=71, minutes=59, seconds=59),
        handoff="with",
    )
    late = conversation("e", customer="eve")
    back_late = conversation(
        "e2",
        customer="eve",
        recontact_of="e",
        start=last_ai_answer(late, "refund") + timedelta(hours=72, seconds=1),
    )
    settlement = settled(confirmed + assumed + handed_off + reopened + back_soon + late + back_late)
    invoice, report = settlement.invoice, settlement.report
    lines = {line.outcome: line for line in invoice.lines}
    assert lines["ai_resolution"].episodes == ("a#refund", "b#delivery", "e#refund")
    assert lines["ai_resolution"].amount == Decimal("2.97")
    assert lines["handoff"].episodes == ("c#refund",)
    assert lines["handoff"].amount == Decimal("0.00")
    assert invoice.total == Decimal("2.97")
    assert invoice.not_billed == {"reopened": 1, "unresolved": 0}
    assert (report.recontacts_inside_window, report.recontacts_outside_window) == (1, 1)
    # a, b and d once each, e twice (its recontact after the window had the AI answer again)
    assert report.model_cost == Decimal("0.0100") * 5


def test_episode_whose_window_closes_after_the_period_is_billed_in_the_next() -> None:
    end_of_month = PERIOD.end - timedelta(hours=30)
    events = conversation("z", start=end_of_month)
    november = settled(events)
    assert november.invoice.total == 0 and november.report.provisional == 1
    december = settle(
        contract(),
        by_customer(events),
        period=month_period("Europe/Berlin", 2026, 12),
        ledger=LEDGER,
    )
    assert december.invoice.total == Decimal("0.99")
    assert december.invoice.lines[0].episodes == ("z#refund",)


def test_invoice_bytes_are_stable() -> None:
    events = conversation("a", confirm=True) + conversation("b", customer="bob", handoff="with")
    first = invoice_json(settled(events).invoice)
    assert first == invoice_json(settled(list(reversed(events))).invoice)
    assert b'"total": "0.99"' in first
