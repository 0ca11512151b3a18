"""Settlement runs claimed under a lease, on SQLite and on PostgreSQL: a run whose claimant died
is claimed again once the lease lapses and settles to the same one invoice; a run that keeps
dying is failed after its attempts, saying why; no two workers hold a run at once. Time is
moved by hand (the workers' `now`), never slept."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import msgspec
import psycopg
import pytest

from conftest import ACME_CONTRACT, Service
from factories import conversation
from raas.core.contract import parse_contract
from raas.core.invoice import invoice_json
from raas.core.periods import parse_period
from raas.engine.reference import settle_from_ledger
from raas.ledger.keys import generate, parse_signer_key
from raas.ledger.store import LedgerStore
from raas.migrations import upgrade
from raas.service.settings import ServiceSettings, open_stores
from raas.service.sql_store import PostgresServiceStore, SqliteServiceStore
from raas.service.store import ContractVersion, ServiceStore, SettlementRun
from raas.service.tenancy import checkpoint_size, run_settlement
from raas.service.worker import Heartbeat, SettlementWorker
from settlement_runs import queued_run

LEASE: Final = timedelta(seconds=60)
ATTEMPTS_MAX: Final = 3
T0: Final = datetime(2026, 12, 1, 9, tzinfo=UTC)


class Clock:
    """The workers' wall clock, moved by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self._moment = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._moment

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._moment += timedelta(seconds=seconds)
            return self._moment


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], ServiceStore]]:
    """Opens another connection to one service store (as another server process would)."""
    opened: list[ServiceStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    def another() -> ServiceStore:
        store: ServiceStore = (
            SqliteServiceStore(tmp_path / "service.db")
            if url is None
            else PostgresServiceStore(url)
        )
        opened.append(store)
        return store

    try:
        yield another
    finally:
        for store in opened:
            store.close()


def claim(store: ServiceStore, clock: Clock) -> SettlementRun | None:
    return store.claim_settlement_run(clock(), lease=LEASE, attempts_max=ATTEMPTS_MAX)


def test_a_lapsed_claim_is_taken_over_and_only_the_newer_claim_records_the_end(
    store: ServiceStore,
) -> None:
    clock = Clock()
    store.add_settlement_run("acme", queued_run("acme", "run-1"))
    first = claim(store, clock)
    assert first is not None and (first.attempts, first.lease_expires_at) == (1, T0 + LEASE)
    clock.advance(30)
    assert store.renew_settlement_lease("acme", "run-1", 1, clock() + LEASE)
    clock.advance(59)  # the first lease would have lapsed; the renewed one has not
    assert claim(store, clock) is None
    clock.advance(2)
    second = claim(store, clock)
    assert second is not None and (second.id, second.status, second.attempts) == (
        "run-1",
        "running",
        2,
    )
    assert not store.renew_settlement_lease("acme", "run-1", 1, clock() + LEASE)
    stale = store.finish_settlement_run("acme", "run-1", "failed", error="late", attempt=1)
    assert stale == second, "the lapsed claim changes nothing"
    done = store.finish_settlement_run(
        "acme", "run-1", "succeeded", invoice_id="inv-1", attempt=2, now=clock()
    )
    assert (done.status, done.attempts, done.lease_expires_at, done.finished_at) == (
        "succeeded",
        2,
        None,
        clock(),
    )
    actions = [record.action for record in store.audit_log("acme")]
    assert actions == ["settlement.start", "settlement.reclaim", "settlement.succeeded"]
    clock.advance(3600)
    assert claim(store, clock) is None, "an ended run is never claimed again"


def test_a_run_that_keeps_dying_is_failed_after_its_attempts_saying_why(
    store: ServiceStore,
) -> None:
    clock = Clock()
    store.add_settlement_run("acme", queued_run("acme", "run-1"))
    for attempt in range(1, ATTEMPTS_MAX + 1):
        run = claim(store, clock)
        assert run is not None and run.attempts == attempt
        clock.advance(LEASE.total_seconds() + 1)  # its server is killed: nobody renews
    assert claim(store, clock) is None
    failed = store.settlement_run("acme", "run-1")
    assert failed is not None and (failed.status, failed.finished_at) == ("failed", clock())
    assert failed.error is not None
    assert "given up after 3 attempts (at most 3)" in failed.error
    assert "stopped renewing its lease of 60 s" in failed.error
    assert str(T0 + 3 * LEASE + timedelta(seconds=2)) in failed.error, "when the last lapsed"
    actions = [record.action for record in store.audit_log("acme")]
    assert actions.count("settlement.reclaim") == 2 and actions[-1] == "settlement.failed"


def test_two_workers_never_hold_the_same_run(open_store: Callable[[], ServiceStore]) -> None:
    runs = 24
    setup = open_store()
    for number in range(runs):
        setup.add_settlement_run("acme", queued_run("acme", f"run-{number:02}"))
    workers = [open_store() for _ in range(4)]
    clock = Clock()

    def claim_all(store: ServiceStore) -> list[SettlementRun]:
        claimed = []
        while (run := claim(store, clock)) is not None:
            claimed.append(run)
        return claimed

    def claim_at_once() -> list[SettlementRun]:
        with ThreadPoolExecutor(len(workers)) as pool:
            every = [run for claimed in pool.map(claim_all, workers) for run in claimed]
        # A claim that lost a race answers None while runs are left: one more pass takes them.
        return every + claim_all(workers[0])

    first = claim_at_once()
    assert sorted(run.id for run in first) == [f"run-{number:02}" for number in range(runs)]
    assert {run.attempts for run in first} == {1}
    clock.advance(LEASE.total_seconds() / 2)
    assert claim_all(workers[1]) == [], "every run is held"
    clock.advance(LEASE.total_seconds())  # every claimant died
    second = claim_at_once()
    assert sorted(run.id for run in second) == [f"run-{number:02}" for number in range(runs)]
    assert {run.attempts for run in second} == {2}


def test_a_heartbeat_keeps_the_claim_while_the_run_works(store: ServiceStore) -> None:
    clock = Clock()
    store.add_settlement_run("acme", queued_run("acme", "run-1"))
    run = claim(store, clock)
    assert run is not None
    clock.advance(50)
    with Heartbeat(store, run, lease=LEASE, interval_seconds=0.01, now=clock) as heartbeat:
        assert heartbeat.renewed.wait(30), "the heartbeat renewed the lease"
        clock.advance(20)  # past the first lease, within the renewed one
        assert claim(store, clock) is None
    renewed = store.settlement_run("acme", "run-1")
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at >= T0 + timedelta(seconds=50) + LEASE


def prepare(ledger: LedgerStore, store: ServiceStore) -> tuple[SettlementRun, str, bytes]:
    """acme's November at a signed checkpoint, and its contract: the queued run of it, and the
    invoice's id and bytes as the reference settles them."""
    ledger.append(conversation("c1") + conversation("c2", customer="customer-2", confirm=True))
    note = ledger.sign_checkpoint("acme", parse_signer_key(generate("helpdesk-ai")[0]))
    document = ACME_CONTRACT.read_text(encoding="utf-8")
    contract = parse_contract(document, "acme-support")
    store.ensure_tenant("acme", "test")
    store.add_contract_version(
        "acme",
        ContractVersion(
            tenant="acme",
            contract=contract.contract,
            version=contract.version,
            effective_from=contract.effective_from,
            effective_until=contract.effective_until,
            document=document,
            document_sha256="0" * 64,
            created_at=T0,
            created_by="test",
        ),
        "test",
    )
    run = msgspec.structs.replace(
        queued_run("acme", "run-1", contract=contract.contract, version=contract.version),
        checkpoint_size=checkpoint_size(note),
    )
    store.add_settlement_run("acme", run)
    period = parse_period(run.period, contract.time_zone)
    invoice = settle_from_ledger(ledger, contract, period, size=run.checkpoint_size).invoice
    return run, invoice.id, invoice_json(invoice)


@pytest.mark.parametrize("invoice_written", [False, True], ids=["before", "after-invoice"])
def test_a_run_whose_claimant_died_is_settled_by_another_worker_to_the_one_invoice(
    ledger_location: str, invoice_written: bool
) -> None:
    """Worker A claims the run and its process dies (before issuing the invoice, or after but
    before recording the run's end); worker B, another process, takes the run over once A's
    lease lapsed and issues the same invoice, once."""
    clock = Clock()
    settings = ServiceSettings(database=ledger_location)
    ledger_a, store_a = open_stores(settings)
    ledger_b, store_b = open_stores(settings)
    try:
        _, invoice_id, expected = prepare(ledger_a, store_a)
        a, b = (
            SettlementWorker(ledger, store, now=clock, lease=LEASE, attempts_max=ATTEMPTS_MAX)
            for ledger, store in ((ledger_a, store_a), (ledger_b, store_b))
        )
        claimed = a.claim()
        assert claimed is not None and claimed.attempts == 1
        if invoice_written:
            ledger_a.store_invoice(invoice_id, "acme", expected)
        clock.advance(LEASE.total_seconds() - 1)
        assert b.run_queued() == [], "A's lease still holds"
        clock.advance(2)
        [done] = b.run_queued()
        assert (done.status, done.attempts, done.invoice_id, done.error) == (
            "succeeded",
            2,
            invoice_id,
            None,
        )
        assert ledger_b.list_invoices("acme") == [invoice_id]
        assert ledger_b.get_invoice("acme", invoice_id) == expected
        # A was only stalled, and finishes its attempt: the run stays as B recorded it.
        late = run_settlement(ledger_a, store_a, claimed, now=clock)
        assert late == done
        actions = [record.action for record in store_b.audit_log("acme")]
        assert actions.count("settlement.succeeded") == 1
        assert ledger_b.list_invoices("acme") == [invoice_id]
    finally:
        for opened in (store_a, ledger_a, store_b, ledger_b):
            opened.close()


def test_a_run_reads_back_with_its_attempts_and_lease(service: Service) -> None:
    held_until = datetime.now(UTC) + timedelta(days=1)  # the app's worker leaves it alone
    store = SqliteServiceStore(service.database)
    try:
        run = msgspec.structs.replace(
            queued_run("acme", "run-1"), status="running", attempts=2, lease_expires_at=held_until
        )
        store.add_settlement_run("acme", run)
    finally:
        store.close()
    read = service.client.get("/v1/settlements/run-1", headers=service.headers("acme", "buyer"))
    assert read.status_code == 200, read.text
    body = read.json()
    assert (body["status"], body["attempts"]) == ("running", 2)
    assert datetime.fromisoformat(body["lease_expires_at"]) == held_until


OLD_SQLITE_RUNS: Final = """
CREATE TABLE service_settlement_runs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, contract TEXT NOT NULL, version INTEGER NOT NULL,
    period TEXT NOT NULL, checkpoint_size INTEGER NOT NULL, status TEXT NOT NULL,
    invoice_id TEXT, error TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    created_by TEXT NOT NULL, PRIMARY KEY (tenant, id)
)
"""
STUCK_RUN: Final = (
    "INSERT INTO service_settlement_runs (tenant, id, contract, version, period, "
    "checkpoint_size, status, started_at, created_by) VALUES "
    "('acme', 'stuck', 'support', 1, '2026-11', 10, 'running', '2026-11-25T10:00:00+00:00', 'k')"
)


def test_a_run_left_running_before_leases_existed_is_taken_over_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(OLD_SQLITE_RUNS)
        connection.execute(STUCK_RUN)
    store = SqliteServiceStore(path)
    try:
        assert_taken_over(store)
    finally:
        store.close()


def test_a_run_left_running_before_leases_existed_is_taken_over_postgres(
    empty_postgres_url: str,
) -> None:
    upgrade(empty_postgres_url, "0005_run_queue")
    with psycopg.connect(empty_postgres_url) as connection:
        connection.execute(STUCK_RUN)
    upgrade(empty_postgres_url)
    store = PostgresServiceStore(empty_postgres_url)
    try:
        assert_taken_over(store)
    finally:
        store.close()


def assert_taken_over(store: ServiceStore) -> None:
    """The stuck run counts one claim, has no lease, and is claimed again at once."""
    stuck = store.settlement_run("acme", "stuck")
    assert stuck is not None and (stuck.attempts, stuck.lease_expires_at) == (1, None)
    run = claim(store, Clock())
    assert run is not None and (run.id, run.attempts) == ("stuck", 2)
