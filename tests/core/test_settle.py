"""Settlement invariants from DESIGN.md, as properties of the pure pipeline: a failure here means
a bill that depends on delivery accidents, a total that is not the sum of its lines, a
first-format contract that no longer bills what it billed before it was written as rules, or a
conversation counted twice."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_judge import contract, format_one_outcome, rules_contract

from factories import NOVEMBER, conversation, entries, last_ai_answer
from raas.core.contract import GateTerms, OutcomeTerms, Weights
from raas.core.episodes import Entry, derive_episodes
from raas.core.events import Event
from raas.core.invoice import Invoice, LedgerPoint, invoice_file_stem, invoice_json
from raas.core.judge import Judge
from raas.core.money import quantize
from raas.core.periods import Period, month_period
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
            "csat": st.sampled_from([None, None, 1, 3, 5]),
            "ai_answers": st.integers(0, 2),
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
            csat=spec.get("csat"),
            ai_answers=spec.get("ai_answers", 1),
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


def test_invoice_file_names_tell_buyers_apart_whatever_they_are_called() -> None:
    # Ids repeat across buyers; with "-" between buyer and id, ("acme-eu", "support-...") and
    # ("acme", "eu-support-...") would be one file, and a buyer with a "/" another folder.
    invoice = settled(conversation("a", confirm=True)).invoice
    assert invoice_file_stem(invoice) == f"invoice-acme_{invoice.id}"
    named = [
        msgspec.structs.replace(invoice, buyer=buyer, id=invoice_id)
        for buyer, invoice_id in (
            ("acme-eu", "support-v1-2026-11"),
            ("acme", "eu-support-v1-2026-11"),
            ("acme_eu", "support-v1-2026-11"),
            ("acme/eu", "support-v1-2026-11"),
            ("acme%2Feu", "support-v1-2026-11"),
            ("..", "support-v1-2026-11"),
        )
    ]
    stems = [invoice_file_stem(item) for item in named]
    assert len(set(stems)) == len(stems)
    assert all("/" not in stem and stem.startswith("invoice-") for stem in stems)


# -- the first format, written as rules, bills what it always billed ------------------------


def format_one_invoice(
    events: list[Event], window_hours: int, period: Period, price: Decimal
) -> tuple[list[tuple[str, int, Decimal, tuple[str, ...]]], dict[str, int], int]:
    """What the first format's settlement gave: (outcome, quantity, amount, episodes) per line,
    what was not billed, and how many episodes were provisional."""
    billed: dict[str, list[str]] = {"ai_resolution": [], "handoff": []}
    not_billed = {"reopened": 0, "unresolved": 0}
    provisional = 0
    for group in by_customer(events):
        for episode in derive_episodes(group, link_horizon=timedelta(hours=window_hours)):
            kind, final_at = format_one_outcome(episode, window_hours)
            if final_at > period.end:
                provisional += 1
            elif period.start <= final_at < period.end:
                if kind in billed:
                    billed[kind].append(episode.id)
                else:
                    not_billed[kind] += 1
    prices = {"ai_resolution": price, "handoff": Decimal(0)}
    lines = [
        (
            kind,
            len(episodes),
            quantize(prices[kind] * len(episodes), "USD", "half_even"),
            tuple(sorted(episodes)),
        )
        for kind, episodes in billed.items()
    ]
    return lines, not_billed, provisional


def lines_of(invoice: Invoice) -> list[tuple[str, int | Decimal, Decimal, tuple[str, ...]]]:
    return [(line.outcome, line.quantity, line.amount, line.episodes) for line in invoice.lines]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=conversation_specs,
    window_hours=st.sampled_from([1, 24, 72, 168]),
    month=st.sampled_from([10, 11, 12]),
)
def test_first_format_contracts_settle_exactly_as_before(  # type: ignore[no-untyped-def]
    specs, window_hours: int, month: int
) -> None:
    """Every episode gets the outcome and the final time the first format's judge gave it, and
    every invoice the same lines, episodes, counts and total."""
    events = workload(specs)
    terms = contract(window_hours)
    judge = Judge(terms)
    for group in by_customer(events):
        for episode in derive_episodes(group, link_horizon=timedelta(hours=window_hours)):
            outcome = judge.judge(episode)
            assert (outcome.kind, outcome.final_at) == format_one_outcome(episode, window_hours)
    period = month_period("Europe/Berlin", 2026, month)
    if month == 10:
        terms = msgspec.structs.replace(terms, effective_from=period.start.date())
    invoice = settle(terms, by_customer(events), period=period, ledger=LEDGER).invoice
    lines, not_billed, provisional = format_one_invoice(
        events, window_hours, period, Decimal("0.99")
    )
    assert lines_of(invoice) == lines
    assert [line.description for line in invoice.lines] == [
        "Problems resolved by the AI",
        "Problems handed off to a human",
    ]
    assert invoice.not_billed == not_billed
    assert invoice.provisional == provisional
    assert invoice.total == sum(amount for _, _, amount, _ in lines)


# -- counting per conversation, gates, weights, exclusions ------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=conversation_specs)
def test_per_conversation_counts_each_conversation_once_with_all_its_episodes(specs) -> None:  # type: ignore[no-untyped-def]
    events = workload(specs)
    per_conversation = rules_contract(count="per_conversation")
    invoice = settle(per_conversation, by_customer(events), period=PERIOD, ledger=LEDGER).invoice
    per_problem = settle(rules_contract(), by_customer(events), period=PERIOD, ledger=LEDGER)
    episodes = [episode for line in invoice.lines for episode in line.episodes]
    assert len(episodes) == len(set(episodes)), "an episode is billed on one line only"
    conversations = {episode.split("#")[0] for episode in episodes}
    assert sum(int(line.quantity) for line in invoice.lines) == len(conversations)
    for line in invoice.lines:
        # Every episode of a billed conversation is on its line, and no other.
        billed = {episode.split("#")[0] for episode in line.episodes}
        assert len(billed) == line.quantity
        every = {
            episode.id
            for group in by_customer(events)
            for episode in derive_episodes(group)
            if episode.conversations[0] in billed
        }
        assert set(line.episodes) == every
    # Counting per conversation never bills more conversations than problems.
    assert sum(int(line.quantity) for line in invoice.lines) <= sum(
        int(line.quantity) for line in per_problem.invoice.lines
    )
    assert invoice.total == sum(line.amount for line in invoice.lines)


def test_hand_checked_per_conversation_invoice() -> None:
    """Conversation a: two problems resolved (one confirmed, one assumed): counted once, under
    confirmed_resolution, which comes first in contract order: 0.99. Conversation b: one problem
    assumed resolved: 0.79. Conversation c: two problems, one handed off: the handoff comes first
    in contract order, so c is a free handoff. Total 1.78 USD."""
    a = conversation("a", customer="ann", intents=("refund", "delivery"), confirm=None)
    a_confirmation = conversation("a", customer="ann", intents=("refund",), confirm=True)
    b = conversation("b", customer="bob")
    c = conversation("c", customer="cat", intents=("refund",))
    c_handoff = conversation("c", customer="cat", intents=("password",), handoff="with")
    # The second call for a conversation reuses its ids: give its events their own ids.
    renamed = [
        msgspec.structs.replace(event, id=f"{event.id}-again")
        for event in a_confirmation + c_handoff
    ]
    events = a + b + c + renamed
    invoice = settle(
        rules_contract(count="per_conversation"), by_customer(events), period=PERIOD, ledger=LEDGER
    ).invoice
    lines = {line.outcome: line for line in invoice.lines}
    assert lines["confirmed_resolution"].quantity == 1
    assert lines["confirmed_resolution"].episodes == ("a#delivery", "a#refund")
    assert lines["assumed_resolution"].episodes == ("b#refund",)
    assert invoice.total == Decimal("1.78")
    assert invoice.not_billed == {"handoff": 1, "unresolved": 0}


def test_gates_exclusions_and_weights_reach_the_invoice() -> None:
    """Four problems: a confirmed one on a hard intent (weight 2), a confirmed one with CSAT 1
    (fails the CSAT floor), a test conversation (excluded) and an assumed one (weight 1).
    Billed: confirmed 2 x 0.99 = 1.98, assumed 1 x 0.79 = 0.79; total 2.77 USD."""
    terms = rules_contract(
        exclude='intent == "test"',
        gates=(GateTerms(name="csat_floor", require="csat is null or csat >= 2"),),
        weights=Weights(feature="intent", values={"contract_review": Decimal(2)}),
    )
    events = (
        conversation("a", customer="ann", intents=("contract_review",), confirm=True)
        + conversation("b", customer="bob", confirm=True, csat=1)
        + conversation("c", customer="cat", intents=("test",), confirm=True)
        + conversation("d", customer="dan")
    )
    invoice = settle(terms, by_customer(events), period=PERIOD, ledger=LEDGER).invoice
    lines = {line.outcome: line for line in invoice.lines}
    confirmed = lines["confirmed_resolution"]
    assert (confirmed.quantity, confirmed.amount) == (Decimal(2), Decimal("1.98"))
    assert confirmed.basis == {"outcomes": Decimal(1), "weighted_quantity": Decimal(2)}
    assert lines["assumed_resolution"].amount == Decimal("0.79")
    assert invoice.total == Decimal("2.77")
    assert invoice.not_billed == {
        "csat_floor": 1,
        "excluded": 1,
        "handoff": 0,
        "unresolved": 0,
    }


def test_an_outcome_priced_at_the_window_is_billed_when_final_and_a_handoff_at_once() -> None:
    """A handoff on the last evening of November is final at once (final_at: handoff_at) and
    billed in November; a resolution then is final 72h later, in December."""
    evening = PERIOD.end - timedelta(hours=3)
    priced = rules_contract(
        outcomes={
            "handoff": OutcomeTerms(
                when="handed_off", price=Decimal("0.50"), final_at="handoff_at"
            ),
            "resolution": OutcomeTerms(when="ai_answered", price=Decimal("0.99")),
        }
    )
    events = conversation("h", customer="ann", start=evening, handoff="with") + conversation(
        "r", customer="bob", start=evening
    )
    november = settle(priced, by_customer(events), period=PERIOD, ledger=LEDGER).invoice
    assert november.total == Decimal("0.50") and november.provisional == 1
    december = settle(
        priced,
        by_customer(events),
        period=month_period("Europe/Berlin", 2026, 12),
        ledger=LEDGER,
    ).invoice
    assert december.total == Decimal("0.99")


def test_a_tenant_other_than_the_buyer_is_refused() -> None:
    from raas.errors import SettlementError

    events = conversation("a", tenant="someone-else")
    try:
        settled(events)
    except SettlementError as error:
        assert "someone-else" in str(error)
    else:
        raise AssertionError("settled another tenant's episodes")
