"""Dashboard pages for a tenant with 1,000,000 episodes: server time per main page.

The dashboard is served over a real ledger: by default one of `--conversations` simulated
conversations built here with bench/settle_duckdb.py's build functions (the ledger, then its
episode table), or the ledger and episode table given with `--ledger` and `--table` (e.g.
settle_duckdb.py's 1,000,000 conversations: ~17M events, ~1.17M episodes of tenant `acme`).
Both are copied into the work folder (the pages append to the ledger, and the sources are other
benches' inputs), a checkpoint is signed, November 2026 is settled on DuckDB from the table and
stored as issued (its lines list the month's billed episodes), and the log is hashed into the
blocks the episode page proves its events from (`raas.dashboard.subtrees`; like the episode
table, done once for a dashboard's folder and then kept up as the log grows; timed apart).

Then the dashboard is served in-process. First the vendor's overview of a folder nobody warmed
is timed once (it groups the vendor's figures from the whole table), and its kept figures are
removed; then the dashboard is warmed as `raas serve` does at start (`DashboardData.warm`,
timed apart: tables and figures brought up to the head) and each main page timed as the server
sees it (request in, HTML out; no network, no browser): the vendor's overview, the buyer's
invoice list, invoice, first page of a line's episodes and one episode, and the auditor's
checkpoints. The first request of each page is reported apart (other pages decode the invoice
once), then the median of `--runs` requests, with CPU time beside wall time and the load
average (the machine is shared). Then the ledger grows `--growths` times by
`--growth-conversations` new conversations, and the first vendor overview after each growth is
timed: it brings the episode table up to the new head before it renders, the kept figures
following the rows the update changes; then the first episode page (it hashes the blocks the
growth completed). The growth is new customers by default (their ids renamed from the
simulation's); with `--returning` the month's own customers come back, and the episode table
derives again the episodes their new conversations join. Target: under 300 ms per page. Writes
bench/results/dashboard.json (or `--output`), with the machine (CPU model and count) and the
load average.

    .venv/bin/python bench/dashboard.py [--conversations 20000] [--runs 7] [--growths 5]
        [--growth-conversations 200] [--ledger settle-1000000.db --table episodes.duckdb]
        [--returning] [--workdir /tmp/raas-bench-dashboard] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "bench" / "results" / "dashboard.json"
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
TENANT = "acme"
TARGET_MS = 300.0
KEYS = {"vendor": "bench-vendor", "buyer": "bench-buyer", "auditor": "bench-auditor"}
GROWTH_SEED = 1_000


def source_ledger(workdir: Path, conversations: int) -> tuple[Path, Path]:
    """A ledger of `conversations` and its episode table, built (once) by settle_duckdb.py's
    build functions in `workdir`/source."""
    sys.path.insert(0, str(ROOT / "bench"))
    import settle_duckdb

    folder = workdir / "source"
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / f"settle-{conversations}.db"
    table = folder / f"episodes-{conversations}.duckdb"
    settle_duckdb.build_ledger(conversations, database)
    settle_duckdb.build_table(database, table)
    return database, table


def build(workdir: Path, ledger_path: Path, table_path: Path) -> dict[str, Any]:
    """Copy the ledger and its episode table into `workdir`, sign a checkpoint, settle the month
    on DuckDB and store the invoice as issued; what was built, and how long it took."""
    from raas.core.contract import load_contract
    from raas.core.invoice import invoice_json
    from raas.core.periods import month_period
    from raas.dashboard.subtrees import KeptSubtrees
    from raas.engine.duckdb_engine import settle_contract_with_duckdb
    from raas.engine.episode_table import read_episode_table_state
    from raas.ledger.keys import generate, parse_signer_key
    from raas.ledger.sqlite import SqliteLedger

    contract = load_contract(CONTRACT)
    work = workdir / "served"
    if work.exists():
        shutil.rmtree(work)
    tables = work / "tables"
    tables.mkdir(parents=True)
    started = time.perf_counter()
    database = work / "ledger.db"
    for suffix in ("", "-wal"):
        if Path(f"{ledger_path}{suffix}").exists():
            shutil.copyfile(f"{ledger_path}{suffix}", f"{database}{suffix}")
    table = tables / f"{TENANT}-{int(contract.window.total_seconds())}.duckdb"
    shutil.copyfile(table_path, table)
    copied = time.perf_counter()
    with SqliteLedger(database) as ledger:
        signer_text, verifier_text = generate(ledger.vendor)
        (work / "vendor.pub").write_text(verifier_text + "\n")
        state = read_episode_table_state(table)
        assert state.size == ledger.head(TENANT), "the table is not of this ledger's head"
        ledger.sign_checkpoint(TENANT, parse_signer_key(signer_text))
        signed = time.perf_counter()
        period = month_period(contract.time_zone, 2026, 11)
        invoice = settle_contract_with_duckdb(contract, table, period).invoice
        ledger.store_invoice(invoice.id, TENANT, invoice_json(invoice))
        settled = time.perf_counter()
        events = ledger.head(TENANT)
        blocks = KeptSubtrees(tables / f"{TENANT}.merkle-blocks", TENANT).update(ledger, events)
        hashed = time.perf_counter()
    return {
        "ledger": str(ledger_path),
        "table": str(table_path),
        "events": events,
        "episodes": state.episodes,
        "customers": state.customers,
        "invoice": invoice.id,
        "invoice_episodes": sum(len(line.episodes) for line in invoice.lines),
        "invoice_json_mib": round(len(invoice_json(invoice)) / 2**20, 1),
        "copy_seconds": round(copied - started, 1),
        "sign_seconds": round(signed - copied, 1),
        "settle_seconds": round(settled - signed, 1),
        "proof_blocks": blocks,
        "proof_blocks_seconds": round(hashed - settled, 1),
    }


def measure(
    workdir: Path,
    built: dict[str, Any],
    runs: int,
    growths: int,
    growth_conversations: int,
    returning: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Each main page: its first request, then the median of `runs` requests; then the first
    vendor overview after each of `growths` growths of the ledger (by new customers, or by
    customers of the month coming back when `returning`)."""
    from fastapi.testclient import TestClient

    from raas.core.invoice import invoice_from_json
    from raas.dashboard.app import Principal, create_dashboard_app
    from raas.dashboard.data import ContractText, DashboardData
    from raas.ingest import parse_batch
    from raas.ledger.keys import load_verifier_keys
    from raas.ledger.sqlite import SqliteLedger
    from raas.sim import SimConfig, Simulation

    work = workdir / "served"
    contract_text = ContractText.parse(CONTRACT.read_text(encoding="utf-8"), str(CONTRACT))
    contract = contract_text.contract
    principals = {
        KEYS["vendor"]: Principal(contract.vendor, "vendor"),
        KEYS["buyer"]: Principal(TENANT, "buyer"),
        KEYS["auditor"]: Principal(TENANT, "auditor"),
    }
    ledger = SqliteLedger(work / "ledger.db")
    verifier_keys = load_verifier_keys(work / "vendor.pub")

    def vendor_client(data: DashboardData) -> TestClient:
        client = TestClient(create_dashboard_app(data, principals.get))
        response = client.post(
            "/dashboard/sign-in", data={"api_key": KEYS["vendor"]}, follow_redirects=False
        )
        assert response.status_code == 303, response.text
        return client

    # The first vendor overview of a folder nobody warmed: it groups the whole table (the
    # figures kept are removed after, so that warming below does the same work).
    cold = DashboardData(ledger, [contract_text], work / "tables", verifier_keys)
    cold_first = _timed(vendor_client(cold), "/dashboard/vendor")
    cold.close()
    for kept in (work / "tables").glob("*.figures.json"):
        kept.unlink()
    print(f"vendor overview, first of a folder not warmed: {cold_first[0]:8.1f} ms")
    # As `raas serve` does at start (in the background): tables and figures brought up.
    data = DashboardData(ledger, [contract_text], work / "tables", verifier_keys)
    started = time.perf_counter()
    data.warm()
    warm_ms = (time.perf_counter() - started) * 1000
    print(f"warming at start: {warm_ms:8.1f} ms")
    app = create_dashboard_app(data, principals.get)
    body = ledger.get_invoice(TENANT, built["invoice"])
    assert body is not None
    invoice = invoice_from_json(body)
    episode = invoice.lines[0].episodes[0]
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
        response = client.post("/dashboard/sign-in", data={"api_key": key}, follow_redirects=False)
        assert response.status_code == 303, response.text
        clients[role] = client
    # The episode table was copied at the ledger's head: the first page finds it current.
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
            f"{name:34} first {first[0]:8.1f} ms   median {median_ms:8.1f} ms "
            f"(cpu {results[-1]['median_cpu_ms']:.1f} ms)"
        )
    grown: list[tuple[float, float]] = []
    grown_episode: list[tuple[float, float]] = []
    appended: list[int] = []
    for growth in range(growths):
        simulation = Simulation(
            SimConfig(
                seed=GROWTH_SEED + growth,
                conversations=growth_conversations,
                tenant=TENANT,
                source=f"urn:raas:bench:growth:{growth}",
            )
        )
        head = ledger.head(TENANT)
        for batch in simulation.ndjson_batches():
            if not returning:
                batch = batch.replace(b'"customer":"customer-', f'"customer":"g{growth}-'.encode())
            ledger.append(parse_batch(batch, ndjson=True))
        appended.append(ledger.head(TENANT) - head)
        data.refresh(TENANT)  # as a write through the dashboard does; else within 10 s
        grown.append(_timed(clients["vendor"], "/dashboard/vendor"))
        grown_episode.append(_timed(clients["buyer"], pages[4][2]))
        print(
            f"vendor overview after {appended[-1]:,} new events: {grown[-1][0]:8.1f} ms "
            f"(cpu {grown[-1][1]:.1f} ms); episode {grown_episode[-1][0]:8.1f} ms "
            f"(cpu {grown_episode[-1][1]:.1f} ms)"
        )
    data.close()
    ledger.close()
    start = {
        "first_vendor_overview_not_warmed_ms": round(cold_first[0], 1),
        "first_vendor_overview_not_warmed_cpu_ms": round(cold_first[1], 1),
        "warming_at_start_ms": round(warm_ms, 1),
    }
    growth_result: dict[str, Any] = {
        "page": "vendor overview, first request after the ledger grew",
        "url": "/dashboard/vendor",
        "growth_conversations": growth_conversations,
        "growth_customers": "returning" if returning else "new",
        "events_appended": appended,
    }
    if grown:
        median_ms = statistics.median(wall for wall, _cpu in grown)
        growth_result |= {
            "median_ms": round(median_ms, 1),
            "median_cpu_ms": round(statistics.median(cpu for _wall, cpu in grown), 1),
            "runs_ms": [round(wall, 1) for wall, _cpu in grown],
            "within_target": median_ms < TARGET_MS,
        }
        episode_ms = statistics.median(wall for wall, _cpu in grown_episode)
        growth_result["episode_page"] = {
            "url": pages[4][2],
            "median_ms": round(episode_ms, 1),
            "median_cpu_ms": round(statistics.median(cpu for _wall, cpu in grown_episode), 1),
            "runs_ms": [round(wall, 1) for wall, _cpu in grown_episode],
            "within_target": episode_ms < TARGET_MS,
        }
    return results, growth_result, start


def _timed(client: Any, url: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return elapsed


def _cpu_model() -> str:
    """The CPU's model name as lscpu gives it ("" when there is no lscpu)."""
    try:
        output = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, env={"LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    for line in output.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Model name":
            return value.strip()
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--ledger", type=Path, help="a ledger to serve (copied), with --table")
    parser.add_argument("--table", type=Path, help="the episode table of --ledger at its head")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--growths", type=int, default=5)
    parser.add_argument("--growth-conversations", type=int, default=200)
    parser.add_argument(
        "--returning",
        action="store_true",
        help="grow by the month's customers coming back (each one's month is derived again)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench-dashboard"))
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="the results file")
    arguments = parser.parse_args()
    if (arguments.ledger is None) != (arguments.table is None):
        parser.error("--ledger and --table go together")
    if arguments.ledger is None:
        ledger_path, table_path = source_ledger(arguments.workdir, arguments.conversations)
    else:
        ledger_path, table_path = arguments.ledger, arguments.table
        # A table of an earlier format or ledger head would be built again by the first page
        # served, inside its timing; settle_duckdb.py's build brings it up to date here instead.
        sys.path.insert(0, str(ROOT / "bench"))
        import settle_duckdb

        settle_duckdb.build_table(ledger_path, table_path)
    built = build(arguments.workdir, ledger_path, table_path)
    print(json.dumps(built))
    load_before = os.getloadavg()
    pages, growth, start = measure(
        arguments.workdir,
        built,
        arguments.runs,
        arguments.growths,
        arguments.growth_conversations,
        arguments.returning,
    )
    document = {
        "benchmark": "dashboard pages: server time per main page",
        "target_ms": TARGET_MS,
        "contract": str(CONTRACT.relative_to(ROOT)),
        "workload": built,
        "start": start,
        "pages": pages,
        "after_growth": growth,
        "all_within_target": all(page["within_target"] for page in pages)
        and growth.get("within_target", True)
        and growth.get("episode_page", {}).get("within_target", True),
        "machine": {
            "cpu_model": _cpu_model(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": " ".join(f"{value:.1f}" for value in load_before),
            "load_average_after": " ".join(f"{value:.1f}" for value in os.getloadavg()),
        },
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
