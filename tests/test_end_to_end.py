"""The first slice end to end, as a user runs it: simulate -> ingest -> settle through the real
SQLite ledger and the `raas` command. What would break: an invoice that depends on how events
were delivered, a command that half-stores a bad file, or an error that does not say where."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raas.core.contract import load_contract
from raas.core.invoice import invoice_json
from raas.core.periods import month_period
from raas.engine.reference import settle_from_ledger
from raas.ingest.validate import parse_batch
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
RAAS = [sys.executable, "-m", "raas.cli.main"]
NOVEMBER = month_period("Europe/Berlin", 2026, 11)


def raas(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAAS, *map(str, arguments)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def workload() -> list[list[bytes]]:
    """A small simulated month, as the NDJSON lines of each delivery batch."""
    simulation = Simulation(SimConfig(seed=11, conversations=400, batch_events=700))
    return [body.splitlines() for body in simulation.ndjson_batches()]


def settle_lines(lines: list[bytes], batch_sizes: list[int], path: Path) -> bytes:
    contract = load_contract(CONTRACT)
    with SqliteLedger(path) as ledger:
        position = 0
        for size in batch_sizes:
            chunk = lines[position : position + size]
            position += size
            if chunk:
                ledger.append(parse_batch(b"\n".join(chunk), ndjson=True))
        if position < len(lines):
            ledger.append(parse_batch(b"\n".join(lines[position:]), ndjson=True))
        return invoice_json(settle_from_ledger(ledger, contract, NOVEMBER).invoice)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), redelivered_share=st.floats(0, 0.3))
def test_any_delivery_order_and_redelivery_gives_the_same_invoice(
    workload: list[list[bytes]],
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    redelivered_share: float,
) -> None:
    lines = [line for batch in workload for line in batch]
    expected = settle_lines(
        lines, [700] * (len(lines) // 700 + 1), tmp_path_factory.mktemp("in-order") / "ledger.db"
    )
    rng = random.Random(seed)
    shuffled = lines + rng.sample(lines, k=int(len(lines) * redelivered_share))
    rng.shuffle(shuffled)
    sizes = [rng.randint(1, 3000) for _ in range(len(shuffled) // 200 + 1)]
    again = settle_lines(shuffled, sizes, tmp_path_factory.mktemp("shuffled") / "ledger.db")
    assert again == expected
    invoice = json.loads(again)
    assert Decimal(invoice["total"]) == sum(Decimal(line["amount"]) for line in invoice["lines"])
    assert Decimal(invoice["total"]) > 0


def test_demo_runs_and_writes_a_consistent_invoice(tmp_path: Path) -> None:
    result = raas("demo", "--conversations", "300", "--out", tmp_path / "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "AI resolutions (billed)" in result.stdout
    [json_path] = (tmp_path / "demo").glob("invoice-acme_*.json")
    [html_path] = (tmp_path / "demo").glob("invoice-acme_*.html")
    assert f"invoice:    {json_path}" in result.stdout  # the summary names the files written
    invoice = json.loads(json_path.read_bytes())
    assert invoice["period"] == "2026-11" and invoice["currency"] == "USD"
    lines = {line["outcome"]: line for line in invoice["lines"]}
    resolutions = lines["ai_resolution"]
    assert resolutions["quantity"] == len(resolutions["episodes"]) > 0
    assert Decimal(resolutions["amount"]) == Decimal("0.99") * resolutions["quantity"]
    assert f"{Decimal(invoice['total']):,} USD" in html_path.read_text()
    # Same seed, same month, same invoice: the demo is a reproducible settlement. Only the root
    # of the checkpoint it names differs, as each new ledger draws its own commitment key, so
    # its entries commit to personal fields with other salts.
    again = raas("demo", "--conversations", "300", "--out", tmp_path / "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    repeated = json.loads((tmp_path / "again" / json_path.name).read_bytes())
    roots = {repeated["ledger"].pop("root"), invoice["ledger"].pop("root")}
    assert len(roots) == 2 and repeated == invoice


def test_simulate_ingest_settle_commands(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    database = tmp_path / "raas.db"
    assert raas("simulate", "--conversations", "200", "--out", events, cwd=tmp_path).returncode == 0
    first = raas("ingest", events, "--db", database, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = raas("ingest", events, "--db", database, cwd=tmp_path)
    assert again.returncode == 0 and " 0 stored" in again.stdout, "a redelivery stores nothing"
    settle = ["settle", "--contract", CONTRACT, "--period", "2026-11", "--db", database]
    unsigned = raas(*settle, cwd=tmp_path)
    assert unsigned.returncode == 1 and "no signed checkpoint" in unsigned.stderr
    keys = raas("keys", "generate", "helpdesk-ai", "--out", tmp_path / "keys", cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    signer = next((tmp_path / "keys").glob("*.key"))
    settled = raas(*settle, "--key", signer, "--out", tmp_path / "out", cwd=tmp_path)
    assert settled.returncode == 0, settled.stderr
    invoice = tmp_path / "out" / "invoice-acme_acme-support-v1-2026-11.json"
    issued = invoice.read_bytes()
    with SqliteLedger(database) as ledger:
        assert json.loads(issued)["ledger"]["size"] == ledger.head("acme")
        assert (
            json.loads(issued)["ledger"]["root"] == base64.b64encode(ledger.root("acme")).decode()
        )
    # Settling again at the stored checkpoint gives the issued invoice byte for byte.
    again = raas(*settle, "--out", tmp_path / "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / invoice.name).read_bytes() == issued
    # A late event changes what the month would bill: the issued invoice is never replaced.
    late = tmp_path / "late.ndjson"
    event = msgspec.json.decode(events.read_bytes().splitlines()[0])
    event["id"] = "late-arrival"
    late.write_bytes(msgspec.json.encode(event))
    assert raas("ingest", late, "--db", database, cwd=tmp_path).returncode == 0
    refused = raas(*settle, "--key", signer, "--out", tmp_path / "late", cwd=tmp_path)
    assert refused.returncode == 1 and "acme-support-v1-2026-11" in refused.stderr


def test_a_bad_event_is_named_and_its_file_stores_nothing(tmp_path: Path) -> None:
    database = tmp_path / "raas.db"
    good = tmp_path / "good.ndjson"
    assert raas("simulate", "--conversations", "20", "--out", good, cwd=tmp_path).returncode == 0
    assert raas("ingest", good, "--db", database, cwd=tmp_path).returncode == 0
    before = ledger_rows(database)
    lines = good.read_bytes().splitlines()
    broken = msgspec.json.decode(lines[3])
    broken["id"] = "brand-new-id"
    broken["time"] = "yesterday"
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"\n".join([*lines, msgspec.json.encode(broken)]))
    result = raas("ingest", bad, "--db", database, cwd=tmp_path)
    assert result.returncode == 1
    assert "brand-new-id" in result.stderr and "'time'" in result.stderr
    with SqliteLedger(database) as ledger:
        assert ledger.get("acme", broken["source"], "brand-new-id") is None
    assert ledger_rows(database) == before


def ledger_rows(database: Path) -> list[tuple[int, int, bytes, bytes]]:
    with SqliteLedger(database) as ledger:
        return [
            (item.seq, item.log_index, item.leaf_hash, item.entry)
            for tenant in ledger.tenants()
            for item in ledger.iter_events(tenant)
        ]


def test_a_bad_contract_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT.read_text().replace("price: 0.99", "price: ninety-nine cents"))
    result = raas(
        "settle",
        "--contract",
        contract,
        "--period",
        "2026-11",
        "--db",
        tmp_path / "raas.db",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    line = next(
        number
        for number, text in enumerate(contract.read_text().splitlines(), 1)
        if "ninety-nine" in text
    )
    assert f"{contract}:{line}" in result.stderr
    assert "outcomes.ai_resolution.price" in result.stderr
