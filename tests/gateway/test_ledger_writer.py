"""The gateway's ledger writer: a passing ledger failure delays events but never loses them."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from raas.core.events import Csat, Event, make_event
from raas.gateway import accounting
from raas.gateway.accounting import LedgerWriter
from raas.ledger.sqlite import SqliteLedger


class FlakyLedger:
    """A real ledger that refuses its first `failures` appends as a locked database would."""

    def __init__(self, ledger: SqliteLedger, failures: int) -> None:
        self.ledger = ledger
        self.failures = failures
        self.calls = 0

    def append(self, events: list[Event]) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise sqlite3.OperationalError("database is locked")
        return self.ledger.append(events)


def _events(count: int) -> list[Event]:
    moment = datetime(2026, 11, 2, 9, tzinfo=UTC)
    return [
        make_event(
            Csat(score=4),
            id=f"csat-{n}",
            source="gateway-test",
            time=moment,
            tenant="acme",
            customer=f"customer-{n}",
            conversation=f"conversation-{n}",
        )
        for n in range(count)
    ]


async def _write(sink: FlakyLedger, events: list[Event]) -> LedgerWriter:
    writer = LedgerWriter(sink, linger_seconds=0)
    writer.start()
    for event in events:
        writer.put(event)
    await writer.stop()
    return writer


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounting, "WRITER_RETRY_SECONDS", (0.0, 0.0, 0.0))


def test_events_refused_twice_are_appended_once(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        sink = FlakyLedger(ledger, failures=2)
        writer = asyncio.run(_write(sink, _events(5)))
        assert sink.calls == 3
        assert writer.appended == 5
        assert ledger.count("acme") == 5


def test_a_ledger_that_keeps_failing_is_given_up_after_the_last_wait(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        sink = FlakyLedger(ledger, failures=100)
        writer = asyncio.run(_write(sink, _events(3)))
        assert sink.calls == 4  # the first attempt and one after each of the three waits
        assert writer.appended == 0
        assert ledger.count("acme") == 0
