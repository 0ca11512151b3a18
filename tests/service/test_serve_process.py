"""`raas serve` as a user runs it: keys made with `raas apikey create`, the server started as
a process, a simulated month ingested over HTTP in NDJSON batches, a checkpoint signed, the
month settled and the invoice fetched; it must equal the invoice settled in process from the
same events. Ctrl-C (SIGINT) stops the server cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from conftest import ACME_CONTRACT, signer_key
from raas.core.contract import load_contract
from raas.core.invoice import invoice_from_json
from raas.core.periods import parse_period
from raas.engine.reference import settle_from_ledger
from raas.ingest.validate import parse_batch
from raas.ledger.store import MemoryLedger
from raas.service.sql_store import SqliteServiceStore
from raas.sim import SimConfig, Simulation
from settlement_runs import ended_run, queued_run, run_at

RAAS = [sys.executable, "-m", "raas.cli.main"]
READY_SECONDS_MAX = 60
CONVERSATIONS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def create_key(database: str, scope: str) -> str:
    done = subprocess.run(
        [*RAAS, "apikey", "create", "--db", database, "--tenant", "acme", "--scope", scope],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("raas_"), done.stdout
    return done.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`raas serve` over a new SQLite file: its URL, a key per scope, and the file. A run's
    server may die once only (--settlement-attempts 1), so that a test sees a run given up."""
    folder = tmp_path_factory.mktemp("served")
    database = f"sqlite:///{folder / 'raas.db'}"
    keys = {scope: create_key(database, scope) for scope in ("ingest", "vendor-admin", "buyer")}
    port = free_port()
    process = subprocess.Popen(
        [*RAAS, "serve", "--db", database, "--port", str(port), "--key", str(signer_key(folder)),
         "--settlement-attempts", "1", "--settlement-lease", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_SECONDS_MAX
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "raas serve did not become ready"
            time.sleep(0.2)
        yield base, keys, folder / "raas.db"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert code == 0, process.communicate()[1]


def test_a_run_left_running_by_a_killed_server_is_ended_by_the_next_one(
    server: tuple[str, dict[str, str], Path],
) -> None:
    """A server killed while it ran a run leaves the run running under a lease nobody renews;
    the server running now fails it, as --settlement-attempts 1 allows no other claim."""
    base, keys, database = server
    store = SqliteServiceStore(database)
    try:
        lapsed = datetime.now(UTC) - timedelta(seconds=1)
        left = msgspec.structs.replace(
            queued_run("acme", "left"), status="running", attempts=1, lease_expires_at=lapsed
        )
        store.add_settlement_run("acme", left)
    finally:
        store.close()
    with httpx.Client(base_url=base, timeout=60) as client:
        buyer = {"Authorization": f"Bearer {keys['buyer']}"}
        run = run_at(client, "/v1/settlements/left", buyer)
    assert (run["status"], run["attempts"]) == ("failed", 1), run
    assert "given up after 1 attempt (at most 1)" in run["error"]


def test_simulated_month_ingested_over_http_settles_to_the_in_process_invoice(
    server: tuple[str, dict[str, str], Path],
) -> None:
    base, keys, _ = server
    simulation = Simulation(SimConfig(conversations=CONVERSATIONS, seed=3, batch_events=1_000))
    bodies = list(simulation.ndjson_batches())

    def bearer(scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[scope]}"}

    with httpx.Client(base_url=base, timeout=60) as client:
        accepted = 0
        for body in bodies:
            response = client.post(
                "/v1/events",
                content=body,
                headers={**bearer("ingest"), "content-type": "application/x-ndjson"},
            )
            assert response.status_code == 200, response.text
            accepted += response.json()["accepted"]
        admin = bearer("vendor-admin")
        contract = client.post(
            "/v1/contracts",
            content=ACME_CONTRACT.read_bytes(),
            headers={**admin, "content-type": "application/yaml"},
        )
        assert contract.status_code == 201, contract.text
        checkpoint = client.post("/v1/checkpoints", headers=admin)
        assert checkpoint.status_code == 201
        assert checkpoint.json()["size"] == accepted
        queued = client.post(
            "/v1/settlements", json={"contract": "acme-support", "period": "2026-11"}, headers=admin
        )
        run = ended_run(client, queued, admin)
        assert (run["status"], run["checkpoint_size"]) == ("succeeded", accepted), run
        invoice = client.get(f"/v1/invoices/{run['invoice_id']}", headers=bearer("buyer"))
        assert invoice.status_code == 200
    served = invoice_from_json(invoice.content)
    ledger = MemoryLedger()
    for body in bodies:
        ledger.append(parse_batch(body, ndjson=True))
    assert ledger.head("acme") == accepted
    terms = load_contract(ACME_CONTRACT)
    expected = settle_from_ledger(ledger, terms, parse_period("2026-11", terms.time_zone)).invoice
    assert served.total == expected.total and served.total > 0
    assert msgspec.to_builtins(served.lines) == msgspec.to_builtins(expected.lines)
