"""The example contracts, each settled from a small known workload to a total computed by hand
(the arithmetic is in each test's docstring). What would break: a rule that no longer means what
its contract says, a pricing model wired to the wrong measurement (reviews, orders, the holdout,
case costs, service levels), a per-conversation count that bills a conversation twice, an
example file that stops loading, or an engine (DuckDB, Spark) that settles one of them to another
total than the reference judge: every test runs on all three."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from engines import SettleEvents
from factories import NOVEMBER, business, conversation, holdout, last_ai_answer
from raas.core.contract import Contract, load_contract
from raas.core.events import Event
from raas.core.invoice import Invoice, InvoiceLine, invoice_json
from raas.core.periods import month_period
from raas.core.pricing import UpliftShare
from raas.core.settle import Settlement
from raas.service.pages import render_invoice_html

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
PERIOD = month_period("Europe/Berlin", 2026, 11)
# Variations on a hand-checked case: Spark (about a second a settlement) runs the cases only.
WITHOUT_SPARK = ["reference", "duckdb"]


def example(name: str) -> Contract:
    return load_contract(EXAMPLES / f"{name}.yaml")


Settled = Callable[[Contract, list[Event]], Settlement]


@pytest.fixture
def settled(settle_events: SettleEvents) -> Settled:
    """Settles November on each engine in turn: the reference judge, DuckDB and Spark."""

    def run(contract: Contract, events: list[Event]) -> Settlement:
        settlement = settle_events(contract, events, PERIOD)
        invoice = settlement.invoice
        # Whatever the contract, the total is its lines' sum and the page renders every line.
        assert invoice.total == sum(line.amount for line in invoice.lines)
        page = render_invoice_html(invoice)
        assert all(line.description in page for line in invoice.lines)
        return settlement

    return run


def lines(invoice: Invoice) -> dict[str, InvoiceLine]:
    return {line.outcome: line for line in invoice.lines}


def test_every_example_is_tested_here() -> None:
    """A new example contract needs a hand-checked settlement below."""
    tested = {
        "acme-support",
        "intercom-fin",
        "zendesk-automated",
        "procurement-audit",
        "ecommerce-order-share",
        "bank-marketing-uplift",
        "savings-sla",
    }
    assert {path.stem for path in EXAMPLES.glob("*.yaml")} == tested


def test_acme_support_first_format(settled: Settled) -> None:
    """Two problems resolved by the AI (one confirmed, one assumed) at 0.99, one handoff free,
    one the customer said was not resolved: 2 x 0.99 = 1.98 USD."""
    events = (
        conversation("a", customer="ann", confirm=True)
        + conversation("b", customer="bob")
        + conversation("c", customer="cat", handoff="with")
        + conversation("d", customer="dan", confirm=False)
    )
    invoice = settled(example("acme-support"), events).invoice
    assert [(line.outcome, line.quantity, line.amount) for line in invoice.lines] == [
        ("ai_resolution", 2, Decimal("1.98")),
        ("handoff", 1, Decimal("0.00")),
    ]
    assert invoice.total == Decimal("1.98")
    assert invoice.not_billed == {"reopened": 0, "unresolved": 1}


def test_intercom_fin_outcomes_per_conversation(settled: Settled) -> None:
    """Eleven conversations, each counted once for its first outcome in contract order:

    a  refund, confirmed                          confirmed_resolution   0.99
    b  refund, customer left                      assumed_resolution     0.79
    c  refund_over_limit, handed off with context procedure_handoff      0.99
    d  refund, handed off without context         handoff_without_context   free
    e  sales_inquiry, lead confirmed              qualification          2.00
    f  review failed, customer confirmed the fix  remedied_answer        0.49
    g  review failed                              wrong_answer              free
    h  confirmed but rated 1 of 5                 csat_floor gate           free
    i  test traffic                               excluded                  free
    j  refund confirmed + delivery assumed        confirmed_resolution   0.99 (once)
    k  refund, came back after an hour (k2)       unresolved                free

    Lines: procedure_handoff 0.99, qualification 2.00, remedied_answer 0.49,
    confirmed_resolution 2 x 0.99 = 1.98, assumed_resolution 0.79. Total 6.25 USD."""
    k = conversation("k", customer="kim")
    events = (
        conversation("a", customer="ann", confirm=True)
        + conversation("b", customer="bob")
        + conversation("c", customer="cat", intents=("refund_over_limit",), handoff="with")
        + conversation("d", customer="dan", handoff="without")
        + conversation("e", customer="eve", intents=("sales_inquiry",), confirm=True)
        + conversation("f", customer="fay", confirm=True, review=False)
        + conversation("g", customer="gus", review=False)
        + conversation("h", customer="hal", confirm=True, csat=1)
        + conversation("i", customer="ivy", intents=("test",), confirm=True)
        + conversation("j", customer="jon", intents=("refund",), confirm=True)
        + [
            msgspec.structs.replace(event, id=f"{event.id}-delivery")
            for event in conversation("j", customer="jon", intents=("delivery",))
        ]
        + k
        + conversation(
            "k2",
            customer="kim",
            recontact_of="k",
            start=last_ai_answer(k, "refund") + timedelta(hours=1),
        )
    )
    settlement = settled(example("intercom-fin"), events)
    invoice = settlement.invoice
    assert [(line.outcome, line.quantity, line.amount) for line in invoice.lines] == [
        ("procedure_handoff", 1, Decimal("0.99")),
        ("qualification", 1, Decimal("2.00")),
        ("remedied_answer", 1, Decimal("0.49")),
        ("confirmed_resolution", 2, Decimal("1.98")),
        ("assumed_resolution", 1, Decimal("0.79")),
    ]
    assert lines(invoice)["confirmed_resolution"].episodes == ("a#refund", "j#delivery", "j#refund")
    assert lines(invoice)["procedure_handoff"].description == (
        "A procedure the AI ran, handed to a human with its context"
    )
    assert invoice.total == Decimal("6.25")
    assert invoice.not_billed == {
        "csat_floor": 1,
        "excluded": 1,
        "handoff": 0,
        "handoff_without_context": 1,
        "unresolved": 1,
        "wrong_answer": 1,
    }
    assert settlement.report.units == 11
    assert settlement.report.episodes == 12  # j holds two problems


def test_zendesk_automated_resolutions(settled: Settled) -> None:
    """a: evaluated relevant, no return: 1.50. b: came back after an hour: free. c: evaluated
    not relevant: free. d: escalated with notes: free. e: two problems, both relevant, one
    conversation: 1.50. f: on 30 November at 20:00, its 72 hours end in December: provisional.
    g: not evaluated: free. Automated resolutions 2 x 1.50 = 3.00 USD."""
    b = conversation("b", customer="bob", review=True)
    events = (
        conversation("a", customer="ann", review=True)
        + b
        + conversation(
            "b2",
            customer="bob",
            recontact_of="b",
            start=last_ai_answer(b, "refund") + timedelta(hours=1),
        )
        + conversation("c", customer="cat", review=False)
        + conversation("d", customer="dan", handoff="with")
        + conversation("e", customer="eve", intents=("refund", "delivery"), review=True)
        + conversation("f", customer="fay", review=True, start=PERIOD.end - timedelta(hours=4))
        + conversation("g", customer="gus")
    )
    invoice = settled(example("zendesk-automated"), events).invoice
    [line] = invoice.lines
    assert (line.outcome, line.quantity, line.amount) == (
        "automated_resolution",
        2,
        Decimal("3.00"),
    )
    assert line.episodes == ("a#refund", "e#delivery", "e#refund")
    assert invoice.total == Decimal("3.00")
    assert invoice.provisional == 1
    assert invoice.not_billed == {
        "assisted_escalation": 1,
        "escalation": 0,
        "irrelevant_answer": 1,
        "unresolved": 2,
    }


def test_procurement_audit_by_volume_and_accuracy(settled: Settled) -> None:
    """Audited cases: p1 framework_contract (weight 3), p2..p5 purchase_order (weight 1 each):
    a weighted quantity of 7. Reviewed: p1, p2, p3 passed, p4 failed: accuracy 3/4 = 75%, below
    95%: the last tier, 2.00 a case (4 reviews meet the minimum sample of 4). 7 x 2.00 = 14.00.
    Invoice matches m1..m3: 3 in the first volume tier, 3 x 0.40 = 1.20. p6 escalated: free.
    Total 15.20 EUR."""
    events = (
        conversation("p1", customer="c1", intents=("framework_contract",), review=True)
        + conversation("p2", customer="c2", intents=("purchase_order",), review=True)
        + conversation("p3", customer="c3", intents=("purchase_order",), review=True)
        + conversation("p4", customer="c4", intents=("purchase_order",), review=False)
        + conversation("p5", customer="c5", intents=("purchase_order",))
        + conversation("p6", customer="c6", intents=("framework_contract",), handoff="with")
        + conversation("m1", customer="c7", intents=("invoice_match",))
        + conversation("m2", customer="c8", intents=("invoice_match",))
        + conversation("m3", customer="c9", intents=("invoice_match",))
    )
    invoice = settled(example("procurement-audit"), events).invoice
    audited, matched = invoice.lines
    assert (audited.kind, audited.quantity, audited.unit_price, audited.amount) == (
        "accuracy_tier",
        Decimal(7),
        Decimal("2.00"),
        Decimal("14.00"),
    )
    assert audited.basis["reviewed"] == 4 and audited.basis["passed"] == 3
    assert audited.basis["accuracy"] == Decimal("0.75")
    assert (matched.kind, matched.quantity, matched.amount) == ("tier", 3, Decimal("1.20"))
    assert invoice.total == Decimal("15.20")
    assert invoice.currency == "EUR"


@pytest.mark.parametrize("settle_events", WITHOUT_SPARK, indirect=True)
def test_procurement_audit_accuracy_tier_moves_with_the_reviews(settled: Settled) -> None:
    """The same cases with p4's review passing: 4 of 4 = 100%, the top tier at 4.00:
    7 x 4.00 = 28.00 + 1.20 = 29.20 EUR."""
    events = (
        conversation("p1", customer="c1", intents=("framework_contract",), review=True)
        + conversation("p2", customer="c2", intents=("purchase_order",), review=True)
        + conversation("p3", customer="c3", intents=("purchase_order",), review=True)
        + conversation("p4", customer="c4", intents=("purchase_order",), review=True)
        + conversation("p5", customer="c5", intents=("purchase_order",))
        + conversation("m1", customer="c7", intents=("invoice_match",))
        + conversation("m2", customer="c8", intents=("invoice_match",))
        + conversation("m3", customer="c9", intents=("invoice_match",))
    )
    assert settled(example("procurement-audit"), events).invoice.total == Decimal("29.20")


def test_ecommerce_order_share(settled: Settled) -> None:
    """8% of each order the AI sold, at most 2.00 an order: a 25.00 -> 2.00 and c 20.00 -> 1.60
    stay under the cap (8% of 45.00 = 3.60); b 30.00 -> 2.40 is capped at 2.00. d's 50.00 came
    after a handoff, e's 100.00 is test traffic, f bought nothing. Total 5.60 USD."""
    events = (
        conversation("a", customer="ann", orders=["25.00"])
        + conversation("b", customer="bob", orders=["30.00"])
        + conversation("c", customer="cat", orders=["20.00"])
        + conversation("d", customer="dan", handoff="with", orders=["50.00"])
        + conversation("e", customer="eve", intents=("test",), orders=["100.00"])
        + conversation("f", customer="fay")
    )
    invoice = settled(example("ecommerce-order-share"), events).invoice
    under, capped = invoice.lines
    assert (under.kind, under.quantity, under.unit_price, under.amount) == (
        "business_share",
        Decimal("45.00"),
        Decimal("0.08"),
        Decimal("3.60"),
    )
    assert under.episodes == ("a#refund", "c#refund")
    assert (capped.quantity, capped.unit_price, capped.amount) == (
        1,
        Decimal("2.00"),
        Decimal("2.00"),
    )
    assert capped.episodes == ("b#refund",)
    assert invoice.total == Decimal("5.60")
    assert invoice.not_billed == {"excluded": 1, "handed_off": 1, "no_answer": 0}


def holdout_month() -> list[Event]:
    """Three treated customers (the AI talked to them) and three held out, with their orders."""
    events: list[Event] = []
    for customer, amount in (("t1", "1000"), ("t2", "3000"), ("t3", "2000")):
        events.append(holdout(customer, "treatment"))
        events += conversation(
            f"{customer}-chat",
            customer=customer,
            intents=("savings_account",),
            orders=[amount],
            currency="EUR",
        )
    for customer, amount in (("c1", "1000"), ("c2", "1500"), ("c3", "500")):
        events.append(holdout(customer, "control"))
        events += business(f"{customer}-branch", [amount], customer=customer, currency="EUR")
    return events


def test_bank_marketing_net_increase_against_the_holdout(settled: Settled) -> None:
    """Treated customers (the AI talked to them) bought 1,000 + 3,000 + 2,000 = 6,000; the
    control group, held out, 1,000 + 1,500 + 500 = 3,000 over as many customers. Net increase
    (point estimate) = 6,000 - 3,000 x 3/3 = 3,000; 0.1% of it = 3.00 EUR."""
    events = holdout_month()
    contract = example("bank-marketing-uplift")
    settlement = settled(contract, events)
    [line] = settlement.invoice.lines
    assert line.kind == "uplift_share"
    assert (line.basis["treated_units"], line.basis["control_units"]) == (Decimal(3), Decimal(3))
    assert line.basis["point_estimate"] == Decimal(3000)
    assert (line.quantity, line.unit_price, line.amount) == (
        Decimal(3000),
        Decimal("0.001"),
        Decimal("3.00"),
    )
    assert settlement.invoice.total == Decimal("3.00")
    # Billed on the lower bound instead, the same data bills what the interval supports: less.
    pricing = contract.pricing
    assert pricing is not None and isinstance(pricing.charges[0], UpliftShare)
    lower_bound = msgspec.structs.replace(pricing.charges[0], bill_on="lower_bound")
    cautious = msgspec.structs.replace(
        contract, pricing=msgspec.structs.replace(pricing, charges=(lower_bound,))
    )
    [lower] = settled(cautious, events).invoice.lines
    assert lower.quantity == max(lower.basis["lower_bound"], Decimal(0))
    assert lower.amount < line.amount


def test_a_customer_assigned_twice_is_in_the_group_of_its_last_assignment(
    settled: Settled,
) -> None:
    """t2 was first held out, then treated; c1 the other way round. Every engine reads a
    customer's group as the reference does, from its last assignment (whatever the order the
    events were delivered in), so the invoice is the one of the single assignments above: 3.00.
    Read from the first assignment, treated would buy 4,000 against 5,000 held out: nothing."""
    events = holdout_month()
    # The earlier assignments, delivered last.
    for customer, group in (("t2", "control"), ("c1", "treatment")):
        earlier = holdout(customer, group, at=NOVEMBER - timedelta(days=20))
        events.append(msgspec.structs.replace(earlier, id=f"holdout-{customer}-first"))
    settlement = settled(example("bank-marketing-uplift"), events)
    [line] = settlement.invoice.lines
    assert (line.basis["treated_units"], line.basis["control_units"]) == (Decimal(3), Decimal(3))
    assert line.basis["point_estimate"] == Decimal(3000)
    assert settlement.invoice.total == Decimal("3.00")


def test_savings_share_with_an_sla_credit(settled: Settled) -> None:
    """Ten cases: six the AI resolved (cost 0), two handed off and two the customer came back
    about (4.20 each, a human finishes them). Actual cost per case 16.80 / 10 = 1.68; savings
    (4.20 - 1.68) x 10 = 25.20; 30% = 7.56. Service levels: resolution rate 6/10 = 60% misses
    70% (5% credit); CSAT (5+5+5+5+3+3)/6 = 4.33 meets 4.0; p95 latency 300 ms meets 2000 ms.
    Credit 5% of 7.56 = 0.378 -> 0.38. Total 7.18 USD."""
    events: list[Event] = []
    for number in range(6):
        csat = (5, 5, 5, 5, 3, 3)[number]
        events += conversation(f"r{number}", customer=f"r{number}", csat=csat)
    for number in range(2):
        events += conversation(f"h{number}", customer=f"h{number}", handoff="with")
    for number in range(2):
        first = conversation(f"u{number}", customer=f"u{number}")
        events += first + conversation(
            f"u{number}b",
            customer=f"u{number}",
            recontact_of=f"u{number}",
            start=last_ai_answer(first, "refund") + timedelta(hours=2),
        )
    settlement = settled(example("savings-sla"), events)
    invoice = settlement.invoice
    savings, credit = invoice.lines
    assert savings.kind == "savings_share"
    assert savings.basis["actual_cost_per_case"] == Decimal("1.68")
    assert savings.basis["savings"] == Decimal("25.20")
    assert savings.amount == Decimal("7.56")
    assert credit.kind == "sla_credit"
    assert credit.basis["resolution_rate.measured"] == Decimal("0.6")
    assert "csat.measured" not in credit.basis
    assert credit.amount == Decimal("-0.38")
    assert invoice.total == Decimal("7.18")
    # The vendor's model cost is in the report, never on the buyer's invoice.
    assert settlement.report.model_cost > 0
    assert b"model_cost" not in invoice_json(invoice)


@pytest.mark.parametrize("settle_events", WITHOUT_SPARK, indirect=True)
def test_p95_latency_is_the_nearest_rank_over_episodes(settled: Settled) -> None:
    """Twenty problems resolved by the AI: savings 20 x 4.20 = 84.00, 30% = 25.20. Of twenty
    slowest answers, the nearest-rank 95th percentile is the 19th smallest: with one answer of
    2,500 ms it is 300 ms (met); with two it is 2,500 ms, above 2,000 ms: a 3% credit of 25.20
    = 0.756 -> 0.76, total 24.44 USD. No CSAT answer: that target cannot be missed."""

    def month(slow: int) -> Invoice:
        events: list[Event] = []
        for number in range(20):
            latency = 2500 if number < slow else 300
            events += conversation(f"r{number}", customer=f"r{number}", latency_ms=latency)
        return settled(example("savings-sla"), events).invoice

    assert month(slow=1).total == Decimal("25.20")
    missed = month(slow=2)
    credit = missed.lines[-1]
    assert credit.kind == "sla_credit"
    assert credit.basis["p95_latency_ms.measured"] == Decimal(2500)
    assert credit.amount == Decimal("-0.76")
    assert missed.total == Decimal("24.44")


@pytest.mark.parametrize("settle_events", WITHOUT_SPARK, indirect=True)
def test_an_empty_month_settles_to_zero_on_every_example(settled: Settled) -> None:
    """No episodes: nothing to measure, nothing billed, no SLA credit guessed."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        invoice = settled(load_contract(path), []).invoice
        assert invoice.total == 0, path.name
        assert all(line.amount == 0 for line in invoice.lines), path.name


@pytest.mark.parametrize("settle_events", WITHOUT_SPARK, indirect=True)
def test_orders_in_another_currency_are_not_attributed(settled: Settled) -> None:
    events = conversation("a", customer="ann", orders=["25.00"], currency="EUR")
    settlement = settled(example("ecommerce-order-share"), events)
    assert settlement.invoice.total == 0
    assert settlement.report.business_events_other_currency == 1


def test_demo_period_start_is_november() -> None:
    """The hand-checked workloads start on 2 November, inside the period they settle."""
    assert PERIOD.start < NOVEMBER < PERIOD.end
