"""Disputes folded from their events: what would break is a dispute shown open after its
ruling, a second ruling overriding the first, or an order of arrival changing the result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from raas.core.disputes import dispute_event
from raas.core.events import DisputeFiled, DisputeRuled, Event
from raas.dashboard.disputes import fold_disputes

FILED_AT = datetime(2026, 12, 3, 9, tzinfo=UTC)


def filed(number: int) -> Event:
    return dispute_event(
        DisputeFiled(
            dispute_id=f"d{number}",
            invoice_id="acme-support-v1-2026-11",
            reason="came back the next day",
            filed_by="acme finance",
            episodes=(f"c{number}#refund",),
        ),
        id=f"d{number}",
        source="urn:test",
        time=FILED_AT + timedelta(minutes=number),
        tenant="acme",
    )


def ruled(number: int, ruling: str, minutes: int) -> Event:
    return dispute_event(
        DisputeRuled(
            dispute_id=f"d{number}",
            ruling="upheld" if ruling == "upheld" else "rejected",
            ruled_by="vendor admin",
        ),
        id=f"d{number}/{minutes}",
        source="urn:test",
        time=FILED_AT + timedelta(minutes=minutes),
        tenant="acme",
    )


def test_open_until_ruled_and_the_first_ruling_stands() -> None:
    events = [
        filed(1),
        filed(2),
        ruled(2, "upheld", 10),
        ruled(2, "rejected", 20),
        ruled(9, "upheld", 5),
    ]
    disputes = {dispute.dispute_id: dispute for dispute in fold_disputes(events)}
    assert set(disputes) == {"d1", "d2"}  # a ruling without its filing is left out
    assert disputes["d1"].status == "open"
    assert disputes["d2"].status == "upheld"
    assert disputes["d2"].ruled_at == FILED_AT + timedelta(minutes=10)
    assert [dispute.dispute_id for dispute in fold_disputes(events)] == ["d2", "d1"]  # newest first


@given(st.permutations([filed(1), filed(2), ruled(1, "rejected", 7), ruled(1, "upheld", 8)]))
def test_the_order_of_arrival_does_not_matter(events: list[Event]) -> None:
    folded = fold_disputes(events)
    assert [(dispute.dispute_id, dispute.status) for dispute in folded] == [
        ("d2", "open"),
        ("d1", "rejected"),
    ]
