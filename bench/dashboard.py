"""Dashboard pages for a tenant with 1,000,000 episodes: server time per main page.

Builds once (then reuses) a SQLite ledger holding a simulated month large enough for a million
episodes, a signed checkpoint, its episode table and the month's invoice (settled on DuckDB and
stored as issued). Then serves the dashboard in-process and times each main page as the server
sees it (request in, HTML out; no network, no browser): the vendor's overview, the buyer's
invoice list, invoice, first page of a line's episodes and one episode, and the auditor's
checkpoints. The first request of each page is reported apart (it decodes the invoice once);
then the median of `--runs` requests, with CPU seconds beside wall seconds and the load average
(the machine is shared). Target: under 300 ms per page. Writes bench/results/dashboard.json.

    .venv/bin/python bench/dashboard.py [--conversations 860000] [--runs 7]
        [--workdir /tmp/raas-bench-dashboard]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "bench" / "results" / "dashboard.json"
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
SEED = 1
TENANT = "acme"
TARGET_MS = 300.0
KEYS = {"vendor": "bench-vendor", "buyer": "bench-buyer", "auditor": "bench-auditor"}


def build(workdir: Path, conversations: int) -> dict[str, Any]:
    """The ledger (simulated and ingested), a signed checkpoint, the episode table and the
    invoice, each built unless already there; returns what was built and how long it took."""
    from raas.core.contract import load_contract
    from raas.core.invoice import invoice_json
    from raas.core.periods import period_containing
    from raas.engine.duckdb_engine import settle_contract_with_duckdb
    from raas.engine.episode_table import build_episode_table
    from raas.ingest import parse_batch
    from raas.ledger.keys import generate, parse_signer_key
    from raas.ledger.sqlite import SqliteLedger
    from raas.sim import SimConfig, Simulation

    contract = load_contract(CONTRACT)
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "ledger.db"
    marker = workdir / "built.json"
    if marker.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        if built.get("conversations") == conversations and built.get("seed") == SEED:
            return built
    for path in workdir.iterdir():
        path.unlink()
    simulation = Simulation(SimConfig(seed=SEED, conversations=conversations, batch_events=10_000))
    signer_text, verifier_text = generate(contract.vendor)
    (workdir / "vendor.pub").write_text(verifier_text + "\n")
    started = time.perf_counter()
    stored = 0
    with SqliteLedger(database, vendor=contract.vendor) as ledger:
        parse = functools.partial(parse_batch, ndjson=True)
        for receipt in ledger.append_parsed(simulation.ndjson_batches(), parse, processes=1):
            stored += receipt.stored
        ingested = time.perf_counter()
        ledger.sign_checkpoint(TENANT, parse_signer_key(signer_text))
        table = workdir / f"{TENANT}-{int(contract.window.total_seconds())}.duckdb"
        table_build = build_episode_table(
            ledger, TENANT, None, table, link_horizon=contract.window, processes=1
        )
        tabled = time.perf_counter()
        period = period_containing(simulation.config.start_utc, contract.time_zone)
        invoice = settle_contract_with_duckdb(contract, table, period).invoice
        ledger.store_invoice(invoice.id, TENANT, invoice_json(invoice))
        settled = time.perf_counter()
    built = {
        "seed": SEED,
        "conversations": conversations,
        "events": stored,
        "episodes": table_build.state.episodes,
        "invoice": invoice.id,
        "ingest_seconds": round(ingested - started, 1),
        "episode_table_seconds": round(tabled - ingested, 1),
        "settle_seconds": round(settled - tabled, 1),
    }
    marker.write_text(json.dumps(built))
    return built


def measure(workdir: Path, built: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    """Each main page: its first request, then the median of `runs` requests."""
    from fastapi.testclient import TestClient

    from raas.core.invoice import invoice_from_json
    from raas.dashboard.app import Principal, create_dashboard_app
    from raas.dashboard.data import ContractText, DashboardData
    from raas.ledger.keys import load_verifier_keys
    from raas.ledger.sqlite import SqliteLedger

    contract_text = ContractText.parse(CONTRACT.read_text(encoding="utf-8"), str(CONTRACT))
    contract = contract_text.contract
    principals = {
        KEYS["vendor"]: Principal(contract.vendor, "vendor"),
        KEYS["buyer"]: Principal(TENANT, "buyer"),
        KEYS["auditor"]: Principal(TENANT, "auditor"),
    }
    ledger = SqliteLedger(workdir / "ledger.db")
    data = DashboardData(
        ledger, [contract_text], workdir, load_verifier_keys(workdir / "vendor.pub")
    )
    app = create_dashboard_app(data, principals.get)
    body = ledger.get_invoice(built["invoice"])
    assert body is not None
    invoice = invoice_from_json(body)
    line = next(line for line in invoice.lines if line.episodes)
    episode = line.episodes[len(line.episodes) // 2]
    invoice_url = f"/dashboard/invoices/{quote(invoice.id)}"
    pages = [
        ("vendor overview", "vendor", "/dashboard/vendor"),
        ("invoice list", "buyer", "/dashboard/invoices"),
        ("invoice", "buyer", invoice_url),
        ("line episodes", "buyer", f"{invoice_url}/lines/1"),
        (
            "episode",
            "buyer",
            f"/dashboard/episode?contract={contract.contract}&id={quote(episode)}",
        ),
        ("audit", "auditor", "/dashboard/audit"),
    ]
    clients: dict[str, TestClient] = {}
    for role, key in KEYS.items():
        client = TestClient(app)
        response = client.post("/dashboard/sign-in", data={"api_key": key})
        assert response.status_code == 200, response.text
        clients[role] = client
    # The episode table was built with the ledger: the first page finds it current.
    results = []
    for name, role, url in pages:
        timings = [_timed(clients[role], url) for _ in range(runs + 1)]
        first, rest = timings[0], timings[1:]
        median_ms = statistics.median(wall for wall, _cpu in rest)
        results.append(
            {
                "page": name,
                "url": url,
                "first_ms": round(first[0], 1),
                "median_ms": round(median_ms, 1),
                "median_cpu_ms": round(statistics.median(cpu for _wall, cpu in rest), 1),
                "runs_ms": [round(wall, 1) for wall, _cpu in rest],
                "within_target": median_ms < TARGET_MS,
            }
        )
        print(
            f"{name:16} first {first[0]:8.1f} ms   median {median_ms:8.1f} ms "
            f"(cpu {results[-1]['median_cpu_ms']:.1f} ms)"
        )
    data.close()
    ledger.close()
    return results


def _timed(client: Any, url: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=860_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench-dashboard"))
    parser.add_argument("--build-only", action="store_true")
    arguments = parser.parse_args()
    built = build(arguments.workdir, arguments.conversations)
    print(json.dumps(built))
    if arguments.build_only:
        return
    load_before = os.getloadavg()
    pages = measure(arguments.workdir, built, arguments.runs)
    document = {
        "benchmark": "dashboard pages: server time per main page",
        "target_ms": TARGET_MS,
        "contract": str(CONTRACT.relative_to(ROOT)),
        "workload": built,
        "pages": pages,
        "all_within_target": all(page["within_target"] for page in pages),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": " ".join(f"{value:.1f}" for value in load_before),
            "load_average_after": " ".join(f"{value:.1f}" for value in os.getloadavg()),
        },
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS_PATH}")


if __name__ == "__main__":
    main()
