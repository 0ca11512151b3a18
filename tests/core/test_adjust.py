"""Settlement over time: issued invoices never change, and what changes after them (late events,
outcomes reopened after billing, upheld disputes) becomes adjustment lines on the next invoice.

What would break: a late event lost or billed twice, a credit that points at the wrong line, a
dispute credited twice when settlement runs again, an invoice plus its adjustments that differs
from settling its period with full hindsight, or a late dispute accepted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from test_judge import rules_contract
from test_settle import by_customer

from factories import NOVEMBER, SOURCE, conversation, filing, ruling
from raas.core.adjust import (
    DISPUTE,
    LATE_EVENTS,
    REOPENED,
    adjustments,
    resettle_horizon,
    settle_with_adjustments,
)
from raas.core.contract import Contract, DisputeTerms
from raas.core.disputes import DisputeError, check_filing, disputes_of
from raas.core.episodes import derive_episodes
from raas.core.events import DisputeFiled, Event, Message, make_event
from raas.core.features import episode_features
from raas.core.invoice import Invoice, LedgerPoint
from raas.core.periods import Period, month_period
from raas.core.pricing import PerOutcome, Prepaid, Pricing
from raas.core.settle import Settlement, settle
from raas.core.versions import SettleOne, Subtotals

NOV = month_period("Europe/Berlin", 2026, 11)
DEC = month_period("Europe/Berlin", 2026, 12)
JAN = month_period("Europe/Berlin", 2027, 1)
LEDGER = LedgerPoint(tenant="acme", size=0)


def settle_one_from(events: Sequence[Event]) -> SettleOne:
    """The reference settlement of one version over one part, from these events."""

    def settle_one(
        contract: Contract, part: Period, as_of: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        return settle(
            contract,
            by_customer(events),
            period=part,
            ledger=LEDGER,
            as_of=as_of,
            prepaid_balance=balance,
            commitment_prior_subtotals=prior,
        )

    return settle_one


def next_invoice(
    contract: Contract,
    period: Period,
    events: Sequence[Event],
    issued: Sequence[Invoice] = (),
    disputes: Sequence[Event] = (),
) -> Invoice:
    def rows(ids: Iterable[str]) -> dict[str, dict[str, object]]:
        wanted = set(ids)
        return {
            episode.id: episode_features(episode)
            for group in by_customer(events)
            for episode in derive_episodes(group, link_horizon=contract.window)
            if episode.id in wanted
        }

    return settle_with_adjustments(
        [contract],
        period,
        settle_one_from(events),
        issued=issued,
        dispute_events=disputes,
        episode_rows=rows,
    ).invoice


def four_problems() -> list[Event]:
    """Four confirmed resolutions in November, one a day apart (0.99 each)."""
    return [
        event
        for day in range(4)
        for event in conversation(
            f"c{day}",
            customer=f"customer-{day}",
            start=NOVEMBER + timedelta(days=day),
            confirm=True,
        )
    ]


def test_late_events_become_a_debit_on_the_next_invoice_pointing_at_the_line() -> None:
    contract = rules_contract()
    events = four_problems()
    on_time = [event for event in events if event.conversation != "c3"]
    november = next_invoice(contract, NOV, on_time)
    assert november.total == Decimal("2.97")  # c0 to c2; c3 arrives late
    december = next_invoice(contract, DEC, events, issued=[november])

    [line] = december.adjustments
    assert line.corrects is not None
    assert (line.corrects.invoice, line.corrects.line, line.corrects.reason) == (
        november.id,
        0,
        LATE_EVENTS,
    )
    assert line.amount == Decimal("0.99") and line.episodes == ("c3#refund",)
    assert december.due == december.total + Decimal("0.99")


def settled_periods(
    contract: Contract,
    period: Period,
    events: Sequence[Event],
    issued: Sequence[Invoice],
    disputes: Sequence[Event] = (),
) -> tuple[Invoice, list[str]]:
    """The next invoice, and the periods settled to make it (its own and those re-settled)."""
    settled: list[str] = []
    one = settle_one_from(events)

    def counting(
        version: Contract, part: Period, as_of: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        settled.append(part.label)
        return one(version, part, as_of, balance, prior)

    invoice = settle_with_adjustments(
        [contract],
        period,
        counting,
        issued=issued,
        dispute_events=disputes,
        episode_rows=lambda ids: {},  # nobody came back in this workload
    ).invoice
    return invoice, settled


def test_an_invoice_is_settled_again_only_while_its_outcomes_can_change() -> None:
    """Window 72h, no reopen, disputes until 14 days after the period: the bound is 14 days.
    December (it starts at November's end) settles November again and bills its late events;
    January, a month after, leaves November alone (the late events are past the terms). With a
    reopen of 60 days the bound is 63 days: January still corrects November."""
    contract = rules_contract(disputes=DisputeTerms(deadline=timedelta(days=14)))
    assert resettle_horizon([contract]) == timedelta(days=14)
    events = four_problems()
    on_time = [event for event in events if event.conversation != "c3"]
    november = next_invoice(contract, NOV, on_time)

    december, settled = settled_periods(contract, DEC, events, [november])
    assert settled == ["2026-11", "2026-12"]  # earlier periods first, then the period
    assert [line.amount for line in december.adjustments] == [Decimal("0.99")]
    january, settled = settled_periods(contract, JAN, events, [november])
    assert settled == ["2027-01"] and january.adjustments == ()

    reopening = rules_contract(
        disputes=DisputeTerms(deadline=timedelta(days=14)), reopen=timedelta(days=60)
    )
    assert resettle_horizon([reopening]) == timedelta(days=63)
    january, settled = settled_periods(reopening, JAN, events, [november])
    assert settled == ["2026-11", "2027-01"]
    assert [line.amount for line in january.adjustments] == [Decimal("0.99")]


def test_a_dispute_upheld_after_the_bound_is_still_credited_once() -> None:
    contract = rules_contract(disputes=DisputeTerms(deadline=timedelta(days=14)))
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    disputes = [
        filing(1, november, at=DEC.start + timedelta(days=10), episodes=["c1#refund"]),
        ruling(1, "upheld", at=DEC.start + timedelta(days=20)),  # after the 14-day bound
    ]
    january, settled = settled_periods(contract, JAN, events, [november], disputes)
    assert settled == ["2026-11", "2027-01"]
    [credit] = january.adjustments
    assert credit.amount == Decimal("-0.99") and credit.episodes == ("c1#refund",)
    february, _ = settled_periods(
        contract, month_period("Europe/Berlin", 2027, 2), events, [november, january], disputes
    )
    assert february.adjustments == ()


def test_an_upheld_dispute_credits_once_however_often_settlement_runs() -> None:
    contract = rules_contract()
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    disputes = [
        filing(1, november, at=DEC.start + timedelta(days=2), episodes=["c1#refund"]),
        ruling(1, "upheld", at=DEC.start + timedelta(days=5)),
    ]
    december = next_invoice(contract, DEC, events, [november], disputes)
    january = next_invoice(contract, JAN, events, [november, december], disputes)

    [credit] = december.adjustments
    assert credit.corrects is not None
    assert (credit.corrects.reason, credit.corrects.dispute) == (DISPUTE, "D-1")
    assert credit.amount == Decimal("-0.99") and credit.episodes == ("c1#refund",)
    assert january.adjustments == ()


def test_a_rejected_dispute_credits_nothing_and_a_pending_one_waits() -> None:
    contract = rules_contract()
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    pending = [filing(1, november, at=DEC.start, episodes=["c1#refund"])]
    rejected = [*pending, ruling(1, "rejected", at=DEC.start + timedelta(days=1))]
    assert next_invoice(contract, DEC, events, [november], pending).adjustments == ()
    assert next_invoice(contract, DEC, events, [november], rejected).adjustments == ()


def test_a_dispute_of_a_line_credits_what_is_left_of_it() -> None:
    contract = rules_contract()
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    disputes = [
        filing(1, november, at=DEC.start, episodes=["c0#refund"]),
        ruling(1, "upheld", at=DEC.start + timedelta(hours=1)),
        filing(2, november, at=DEC.start, lines=[0]),
        ruling(2, "upheld", at=DEC.start + timedelta(hours=2)),
    ]
    december = next_invoice(contract, DEC, events, [november], disputes)

    assert [line.amount for line in december.adjustments] == [Decimal("-0.99"), Decimal("-2.97")]
    assert sum(line.amount for line in december.adjustments) == -november.total


def test_a_dispute_after_the_deadline_is_refused_and_ignored() -> None:
    contract = rules_contract(disputes=DisputeTerms(deadline=timedelta(days=14)))
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    late = filing(1, november, at=NOV.end + timedelta(days=14), episodes=["c1#refund"])
    assert isinstance(late.data, DisputeFiled)

    with pytest.raises(DisputeError, match=r"after the deadline 2026-12-15T00:00:00\+01:00"):
        check_filing(contract, november, late.data, late.time)
    check_filing(contract, november, late.data, late.time - timedelta(seconds=1))
    upheld = [late, ruling(1, "upheld", at=late.time + timedelta(hours=1))]
    assert disputes_of(upheld, contract, {november.id: november}) == []
    assert next_invoice(contract, DEC, events, [november], upheld).adjustments == ()


def test_a_dispute_names_lines_and_episodes_the_invoice_has() -> None:
    contract = rules_contract()
    november = next_invoice(contract, NOV, four_problems())
    for lines, episodes, message in [
        ((5,), (), "line 5 does not exist"),
        ((), ("nope#refund",), "episode 'nope#refund' is not billed"),
    ]:
        data = DisputeFiled(
            dispute_id="D",
            invoice_id=november.id,
            lines=lines,
            episodes=episodes,
            reason="r",
            filed_by="b",
        )
        with pytest.raises(DisputeError, match=message):
            check_filing(contract, november, data, DEC.start)


def test_an_outcome_reopened_after_billing_is_credited_when_the_contract_says_so() -> None:
    """Intercom: the customer comes back to the same conversation later, even in a later
    billing period; the resolution billed in November is deducted in December."""
    events = four_problems()
    back = make_event(
        Message(role="customer", text="It broke again."),
        id="c2-back",
        source=SOURCE,
        time=NOVEMBER + timedelta(days=2 + 10),
        tenant="acme",
        customer="customer-2",
        conversation="c2",
        intent="refund",
    )
    with_reopen = rules_contract(reopen=timedelta(days=30))
    november = next_invoice(with_reopen, NOV, events)
    december = next_invoice(with_reopen, DEC, [*events, back], [november])
    without = next_invoice(rules_contract(), DEC, [*events, back], [november])

    [credit] = december.adjustments
    assert credit.corrects is not None and credit.corrects.reason == REOPENED
    assert (credit.amount, credit.episodes) == (Decimal("-0.99"), ("c2#refund",))
    assert without.adjustments == ()


def test_a_dispute_rate_above_the_threshold_names_a_seeded_audit_sample_once() -> None:
    terms = DisputeTerms(deadline=timedelta(days=30), audit_rate=Decimal("0.2"), audit_sample=2)
    contract = rules_contract(disputes=terms)
    events = four_problems()
    november = next_invoice(contract, NOV, events)
    one = [filing(1, november, at=DEC.start, episodes=["c1#refund"])]  # 1 of 4: 25%
    december = next_invoice(contract, DEC, events, [november], one)
    again = next_invoice(contract, DEC, events, [november], one)
    january = next_invoice(contract, JAN, events, [november, december], one)

    [audit] = december.audits
    assert audit.invoice == november.id and audit.dispute_rate == Decimal("0.25")
    assert len(audit.episodes) == 2 and set(audit.episodes) <= {f"c{d}#refund" for d in range(4)}
    assert again.audits == december.audits
    assert january.audits == ()
    below = rules_contract(disputes=msgspec_replace(terms, audit_rate=Decimal("0.25")))
    assert next_invoice(below, DEC, events, [next_invoice(below, NOV, events)], one).audits == ()


def msgspec_replace(terms: DisputeTerms, **changes: object) -> DisputeTerms:
    import msgspec

    return msgspec.structs.replace(terms, **changes)


# -- properties ---------------------------------------------------------------------------------

problems = st.lists(
    st.fixed_dictionaries(
        {
            "day": st.integers(0, 27),
            "confirm": st.sampled_from([None, True, False]),
            "late": st.booleans(),
            "customer": st.integers(0, 3),
        }
    ),
    min_size=1,
    max_size=10,
)


def workload(specs: list[dict[str, object]]) -> tuple[list[Event], list[Event]]:
    """(every event, those that arrived before November was settled)."""
    events: list[Event] = []
    on_time: list[Event] = []
    for number, spec in enumerate(specs):
        made = conversation(
            f"p{number}",
            customer=f"customer-{spec['customer']}",
            start=NOVEMBER + timedelta(days=spec["day"]),  # type: ignore[arg-type]
            confirm=spec["confirm"],  # type: ignore[arg-type]
        )
        events += made
        if not spec["late"]:
            on_time += made
    return events, on_time


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=problems)
def test_an_invoice_and_its_adjustments_are_what_full_hindsight_bills(specs) -> None:  # type: ignore[no-untyped-def]
    contract = rules_contract()
    events, on_time = workload(specs)
    november = next_invoice(contract, NOV, on_time)
    december = next_invoice(contract, DEC, events, [november])
    hindsight = next_invoice(contract, NOV, events)
    january = next_invoice(contract, JAN, events, [november, december])

    assert november.total + sum(line.amount for line in december.adjustments) == hindsight.total
    assert all(
        line.corrects and line.corrects.invoice == november.id for line in december.adjustments
    )
    assert january.adjustments == ()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=problems, data=st.data())
def test_upheld_disputes_never_credit_twice_nor_more_than_was_billed(specs, data) -> None:  # type: ignore[no-untyped-def]
    contract = rules_contract()
    events, on_time = workload(specs)
    november = next_invoice(contract, NOV, on_time)
    billed = sorted({e for line in november.lines for e in line.episodes})
    disputed = data.draw(st.lists(st.sampled_from(billed), unique=True) if billed else st.just([]))
    disputes: list[Event] = []
    for number, episode in enumerate(disputed):
        disputes += [
            filing(number, november, at=DEC.start, episodes=[episode]),
            ruling(number, "upheld", at=DEC.start + timedelta(hours=number + 1)),
        ]
    december = next_invoice(contract, DEC, events, [november], disputes)
    january = next_invoice(contract, JAN, events, [november, december], disputes)
    february = next_invoice(
        contract,
        month_period("Europe/Berlin", 2027, 2),
        events,
        [november, december, january],
        disputes,
    )

    credits = sum(line.amount for line in december.adjustments if line.corrects.reason == DISPUTE)  # type: ignore[union-attr]
    assert -credits <= november.total
    assert january.adjustments == () and february.adjustments == ()
    # Direct: the pure diff over plain invoices says the same.
    hindsight = {november.id: next_invoice(contract, NOV, events)}
    found = disputes_of(disputes, contract, {november.id: november})
    assert adjustments(contract, [november, december], hindsight, disputes=found) == ()


def test_late_events_draw_prepaid_credit_where_they_belong_and_the_rest_follows() -> None:
    """3.00 of credit. November bills 1.98 (draws it all), December 1.98 (draws the 1.02
    left); then a November problem arrives late. January settles November again (2.97, all
    drawn from the credit) and December from what that leaves (0.03), so the corrections move
    0.99 of credit from December to November, never drawing more than was bought."""
    prices = {"confirmed_resolution": Decimal("0.99"), "assumed_resolution": Decimal("0.79")}
    plain = rules_contract()
    contract = rules_contract(
        outcomes={name: replace(terms, price=None) for name, terms in plain.outcomes.items()},
        pricing=Pricing(charges=(PerOutcome(prices=prices),), prepaid=Prepaid(credit=Decimal(3))),
        disputes=DisputeTerms(deadline=timedelta(days=45)),  # January still adjusts November
    )
    november_events = [event for event in four_problems() if event.conversation != "c3"]
    december_events = [
        event
        for day in (31, 32)
        for event in conversation(
            f"d{day}",
            customer=f"customer-d{day}",
            start=NOVEMBER + timedelta(days=day),
            confirm=True,
        )
    ]
    on_time = [event for event in november_events if event.conversation != "c2"]
    november = next_invoice(contract, NOV, on_time)
    assert (november.total, november.prepaid_balance) == (Decimal("0.00"), Decimal("1.02"))
    december = next_invoice(contract, DEC, on_time + december_events, issued=[november])
    assert (december.total, december.prepaid_balance) == (Decimal("0.96"), Decimal("0.00"))
    assert december.prepaid_balance_before == Decimal("1.02")

    everything = november_events + december_events
    january = next_invoice(contract, JAN, everything, issued=[november, december])
    corrections = {
        (line.corrects.invoice, line.outcome): line.amount
        for line in january.adjustments
        if line.corrects is not None
    }
    assert corrections == {
        (november.id, "confirmed_resolution"): Decimal("0.99"),  # the late problem
        (november.id, "prepaid_drawdown"): Decimal("-0.99"),  # paid from the credit
        (december.id, "prepaid_drawdown"): Decimal("0.99"),  # so December drew 0.99 less
    }
    assert (january.total, january.prepaid_balance) == (Decimal("0.00"), Decimal("0.00"))
    # Charges 2.97 + 1.98 less the 3.00 bought: what the buyer pays over the three invoices.
    assert november.due + december.due + january.due == Decimal("1.95")
