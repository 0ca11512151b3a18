"""DuckDB gives the reference's adjustments: the same earlier invoices, late events, reopened
outcomes and disputes give the same next invoice, byte for byte, whichever engine settles the
periods. What would break: an engine-specific adjustment (a feature read differently, a unit
counted under another id), so that the buyer's credit depends on how the vendor settles."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from test_duckdb_engine import CONTRACTS

from factories import NOVEMBER, SOURCE, conversation, filing, ruling
from raas.core.contract import Contract
from raas.core.events import Event, Message, make_event
from raas.core.invoice import invoice_json
from raas.core.periods import month_period
from raas.engine.duckdb_over_time import settle_over_time_with_duckdb
from raas.engine.episode_table import build_episode_table
from raas.engine.reference import dispute_events, issued_invoices, settle_over_time_from_ledger
from raas.ledger.store import MemoryLedger

TABLES = itertools.count()
NOV = month_period("Europe/Berlin", 2026, 11)
DEC = month_period("Europe/Berlin", 2026, 12)


def month(first: int, count: int, *, customers: int = 3) -> list[Event]:
    return [
        event
        for day in range(first, first + count)
        for event in conversation(
            f"c{day}",
            customer=f"customer-{day % customers}",
            start=NOVEMBER + timedelta(days=day),
            confirm=True if day % 3 else None,
            intents=("refund", "delivery") if day % 4 == 0 else ("refund",),
        )
    ]


def came_back(day: int, after: timedelta) -> Event:
    return make_event(
        Message(role="customer", text="Still broken."),
        id=f"c{day}-back",
        source=SOURCE,
        time=NOVEMBER + timedelta(days=day) + after,
        tenant="acme",
        customer=f"customer-{day % 3}",
        conversation=f"c{day}",
        intent="refund",
    )


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_duckdb_adjusts_as_the_reference_does(name: str, tmp_path: Path) -> None:
    contract: Contract = CONTRACTS[name]
    if contract.time_zone != "Europe/Berlin" or contract.buyer != "acme":
        pytest.skip(f"{name} bills another zone or buyer than this workload's")
    contract = msgspec.structs.replace(contract, reopen=timedelta(days=20))
    ledger = MemoryLedger()
    ledger.append(month(0, 12))
    november = settle_over_time_from_ledger(ledger, [contract], NOV).invoice
    ledger.store_invoice(november.id, "acme", invoice_json(november))
    billed = sorted({e for line in november.lines for e in line.episodes})
    ledger.append([*month(12, 6), came_back(2, timedelta(days=6))])
    if billed:
        ledger.append(
            [
                filing(1, november, at=DEC.start, episodes=billed[:1]),
                ruling(1, "upheld", at=DEC.start + timedelta(days=1)),
            ]
        )
    expected = settle_over_time_from_ledger(ledger, [contract], DEC).invoice
    table = tmp_path / f"table-{next(TABLES)}.duckdb"
    build_episode_table(ledger, "acme", None, table, link_horizon=contract.window)
    size = ledger.head("acme")
    found = settle_over_time_with_duckdb(
        [contract],
        table,
        DEC,
        issued=issued_invoices(ledger, "acme"),
        dispute_events=dispute_events(ledger, "acme", size),
    ).invoice

    assert invoice_json(found) == invoice_json(expected)
    if billed:
        assert expected.adjustments, "the workload must adjust something"
