"""Billing periods follow the contract's time zone through daylight-saving changes, in
settlement itself: an outcome final in the first hour of a month (local time) is billed in
that month even when the month's UTC edges moved by an hour. What would break: a period cut at
UTC midnight or at the wrong offset, so that an outcome is billed in the neighbouring month
(or in both, or in neither)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from test_judge import rules_contract
from test_settle import by_customer
from test_versions import priced, settle_one_from

from factories import conversation
from raas.core.events import Event
from raas.core.invoice import LedgerPoint
from raas.core.periods import month_period, next_period, period_containing, previous_period
from raas.core.settle import settle
from raas.core.versions import contract_parts, settle_versions

# From the first event to the AI's last answer (a resolution claim) in `conversation`.
TO_LAST_ANSWER = timedelta(minutes=4)
WINDOW = timedelta(hours=72)


def final_at(moment: datetime, name: str, customer: str = "customer-1") -> list[Event]:
    """A confirmed resolution whose window closes at `moment`."""
    return conversation(
        name, customer=customer, start=moment - WINDOW - TO_LAST_ANSWER, confirm=True
    )


def billed_in(zone: str, moment: datetime) -> list[str]:
    """The months of `zone` around `moment` whose invoice bills a resolution final then."""
    contract = rules_contract(time_zone=zone, effective_from=date(2026, 1, 1))
    events = final_at(moment, "c1")
    month = period_containing(moment, zone)
    found = []
    for period in (previous_period(month), month, next_period(month)):
        invoice = settle(
            contract, by_customer(events), period=period, ledger=LedgerPoint(tenant="acme", size=0)
        ).invoice
        if invoice.total:
            found.append(period.label)
    return found


@pytest.mark.parametrize(
    ("zone", "moment", "month"),
    [
        # Berlin, October 2026 ends in CET (clocks went back on the 25th): UTC+1.
        ("Europe/Berlin", datetime(2026, 10, 31, 22, 59, 59, tzinfo=UTC), "2026-10"),
        ("Europe/Berlin", datetime(2026, 10, 31, 23, 0, tzinfo=UTC), "2026-11"),
        # Berlin, March 2027 ends in CEST (clocks went forward on the 28th): UTC+2.
        ("Europe/Berlin", datetime(2027, 3, 31, 21, 59, 59, tzinfo=UTC), "2027-03"),
        ("Europe/Berlin", datetime(2027, 3, 31, 22, 0, tzinfo=UTC), "2027-04"),
        # New York, November 2026 starts in EDT (UTC-4) and ends in EST (UTC-5).
        ("America/New_York", datetime(2026, 11, 1, 3, 59, 59, tzinfo=UTC), "2026-10"),
        ("America/New_York", datetime(2026, 11, 1, 4, 0, tzinfo=UTC), "2026-11"),
        ("America/New_York", datetime(2026, 12, 1, 4, 59, 59, tzinfo=UTC), "2026-11"),
        ("America/New_York", datetime(2026, 12, 1, 5, 0, tzinfo=UTC), "2026-12"),
        # New York, March 2027: clocks forward on the 14th; the month ends in EDT.
        ("America/New_York", datetime(2027, 4, 1, 3, 59, 59, tzinfo=UTC), "2027-03"),
        ("America/New_York", datetime(2027, 4, 1, 4, 0, tzinfo=UTC), "2027-04"),
    ],
)
def test_an_outcome_is_billed_in_the_local_month_it_became_final(
    zone: str, moment: datetime, month: str
) -> None:
    assert billed_in(zone, moment) == [month]


def test_a_version_taking_effect_on_the_day_clocks_change_splits_at_local_midnight() -> None:
    """29 March 2026 in Berlin: midnight is still CET (UTC+1), the clocks jump at 02:00."""
    v1 = priced(1, date(2026, 3, 1), "1.00", time_zone="Europe/Berlin")
    v2 = priced(2, date(2026, 3, 29), "2.00", time_zone="Europe/Berlin")
    march = month_period("Europe/Berlin", 2026, 3)
    (_, first), (_, second) = contract_parts([v1, v2], march)
    assert first.end == second.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert second.end == datetime(2026, 3, 31, 22, tzinfo=UTC)  # 1 April, CEST
    # A resolution final at 00:30 local on the 29th is v2's; one at 23:30 on the 28th is v1's.
    events = conversation(
        "early",
        customer="a",
        start=datetime(2026, 3, 28, 22, 30, tzinfo=UTC) - WINDOW - TO_LAST_ANSWER,
        confirm=True,
    ) + conversation(
        "late",
        customer="b",
        start=datetime(2026, 3, 28, 23, 30, tzinfo=UTC) - WINDOW - TO_LAST_ANSWER,
        confirm=True,
    )
    invoice = settle_versions([v1, v2], march, settle_one_from(events)).invoice
    billed = [(line.part.version, line.episodes) for line in invoice.lines if line.quantity]  # type: ignore[union-attr]
    assert billed == [(1, ("early#refund",)), (2, ("late#refund",))]
