"""Dashboard pages for a tenant with 1,000,000 episodes: server time per main page.

A ledger of a million episodes takes more than an hour to simulate and ingest on this shared
machine, so the tenant is built in two parts: a real simulated month (`--conversations`,
ingested, signed, its episode table built from the ledger), then its episode table replicated
with new episode ids (each copy's times shifted inside the month) until it holds `--episodes`
rows. Every page reads what it would read for a real tenant of that size: the table's million
rows, an invoice settled on DuckDB from them (its lines list the million episodes) and stored
as issued; the episode page opens a real episode (replicas have no ledger entries).

Then the dashboard is served in-process and each main page timed as the server sees it
(request in, HTML out; no network, no browser): the vendor's overview, the buyer's invoice
list, invoice, first page of a line's episodes and one episode, and the auditor's
checkpoints. The first request of each page is reported apart (it decodes the invoice once);
then the median of `--runs` requests, with CPU seconds beside wall seconds and the load average
(the machine is shared). The vendor's figures are kept per table state, so the overview is
also timed with them forgotten before each request, as after the ledger grew. Target: under
300 ms per page. Writes bench/results/dashboard.json.

    .venv/bin/python bench/dashboard.py [--episodes 1000000] [--conversations 5000] [--runs 7]
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


def build(workdir: Path, conversations: int, episodes: int) -> dict[str, Any]:
    """The ledger (simulated and ingested), a signed checkpoint, the episode table replicated
    to `episodes` rows and the invoice, unless already there; what was built, and how long it
    took."""
    import duckdb

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
        if (built.get("conversations"), built.get("episodes"), built.get("seed")) == (
            conversations,
            episodes,
            SEED,
        ):
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
        ledger.sign_checkpoint(TENANT, parse_signer_key(signer_text))
        table = workdir / f"{TENANT}-{int(contract.window.total_seconds())}.duckdb"
        real = build_episode_table(ledger, TENANT, None, table, link_horizon=contract.window)
        ingested = time.perf_counter()
        copies = -(-episodes // real.state.episodes) - 1
        with duckdb.connect(str(table)) as connection:
            # Copy n of each row: id suffixed "~n", times moved by a whole number of hours
            # (n * 7 mod 24, so a copy's day may change but stays near the month), same values.
            shifted = ", ".join(
                f"{column} + to_hours((n * 7) % 24) AS {column}"
                for column in ("started_at", "resolution_at", "handoff_at", "last_activity_at")
            )
            connection.execute(
                f"INSERT INTO episodes SELECT episodes.* REPLACE (id || '~' || n AS id, {shifted}) "
                f"FROM episodes, range(1, {copies + 1}) AS copies(n)"
            )
            connection.execute(
                f"DELETE FROM episodes WHERE id IN (SELECT id FROM episodes "
                f"ORDER BY id DESC LIMIT (SELECT count(*) - {episodes} FROM episodes))"
            )
            rows = connection.execute("SELECT count(*) FROM episodes").fetchone()
        assert rows is not None and rows[0] == episodes, rows
        tabled = time.perf_counter()
        period = period_containing(simulation.config.start_utc, contract.time_zone)
        invoice = settle_contract_with_duckdb(contract, table, period).invoice
        ledger.store_invoice(invoice.id, TENANT, invoice_json(invoice))
        settled = time.perf_counter()
    built = {
        "seed": SEED,
        "conversations": conversations,
        "events": stored,
        "episodes_derived": real.state.episodes,
        "episodes": episodes,
        "invoice": invoice.id,
        "invoice_episodes": sum(len(line.episodes) for line in invoice.lines),
        "invoice_json_mib": round(len(invoice_json(invoice)) / 2**20, 1),
        "ledger_and_table_seconds": round(ingested - started, 1),
        "replicate_seconds": round(tabled - ingested, 1),
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
    # A real episode (replicas, "<id>~<n>", have no entries in the ledger).
    episode = next(
        episode for line in invoice.lines for episode in line.episodes if "~" not in episode
    )
    invoice_url = f"/dashboard/invoices/{quote(invoice.id)}"
    pages = [
        ("vendor overview", "vendor", "/dashboard/vendor"),
        # As after the table changed: the figures scanned again (they are kept per table state).
        ("vendor overview, figures not kept", "vendor", "/dashboard/vendor"),
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
        response = client.post("/dashboard/sign-in", data={"api_key": key}, follow_redirects=False)
        assert response.status_code == 303, response.text
        clients[role] = client
    # The episode table was built with the ledger: the first page finds it current.
    results = []

    def forget_figures() -> None:
        data._figures.clear()

    for name, role, url in pages:
        before = forget_figures if name.endswith("not kept") else None
        timings = [_timed(clients[role], url, before) for _ in range(runs + 1)]
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
            f"{name:34} first {first[0]:8.1f} ms   median {median_ms:8.1f} ms "
            f"(cpu {results[-1]['median_cpu_ms']:.1f} ms)"
        )
    data.close()
    ledger.close()
    return results


def _timed(client: Any, url: str, before: Any = None) -> tuple[float, float]:
    if before is not None:
        before()
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench-dashboard"))
    parser.add_argument("--build-only", action="store_true")
    arguments = parser.parse_args()
    built = build(arguments.workdir, arguments.conversations, arguments.episodes)
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
