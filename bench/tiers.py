"""Tiered versus single-tier serving, from the simulator: the same seeded month served with the
router choosing the tier per problem (escalating to the large tier after a failure), and with
every turn on the small tier only and on the large tier only; each month is settled by the
reference judge under the demo contract (in memory: the entries' leaf hashes made as the ledger
makes them), so resolutions are the ones the buyer is billed for.

Columns: resolution rate (billed AI resolutions per problem), model cost per interaction (per
problem), cost per resolved outcome, margin per resolved outcome and per 1,000 problems (billed
minus model cost), the share of model calls per tier, and the p95 latency of a model call.
The tiers' P(resolved) by difficulty are the simulator's assumptions (`raas.sim.Tiering`); the
router knows them per difficulty, as a router trained on the vendor's judged outcomes would
learn them. Prints the table and writes bench/results/tiers.json.

    .venv/bin/python bench/tiers.py [--conversations N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from raas.core.contract import load_contract
from raas.core.episodes import Entry
from raas.core.events import ModelCall, event_leaf_hash
from raas.core.invoice import LedgerPoint
from raas.core.periods import period_containing
from raas.core.settle import settle
from raas.sim import SimConfig, Simulation, Tiering

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
RESULTS = ROOT / "bench" / "results" / "tiers.json"
SERVING = ("router", "small", "large")
SEED = 5


COMMITMENT_KEY = bytes(32)  # commitments do not change outcomes; any key will do


def run(serve: str, conversations: int) -> dict[str, Any]:
    contract = load_contract(CONTRACT)
    config = SimConfig(
        seed=SEED,
        conversations=conversations,
        tenant=contract.buyer,
        duplicate_rate=0.0,  # delivery does not matter here: every event once, in order
        late_rate=0.0,
        tiering=Tiering(serve=serve),
    )
    calls: Counter[str] = Counter()
    latencies: list[int] = []
    started, cpu = time.perf_counter(), time.process_time()
    by_customer: defaultdict[str, list[Entry]] = defaultdict(list)
    size = 0
    for batch in Simulation(config).batches():
        for event in batch:
            if isinstance(event.data, ModelCall):
                calls[event.data.tier] += 1
                latencies.append(event.data.latency_ms)
            by_customer[event.customer].append(Entry(event, event_leaf_hash(event, COMMITMENT_KEY)))
            size += 1
    period = period_containing(config.start_utc, contract.time_zone)
    point = LedgerPoint(tenant=contract.buyer, size=size)
    report = settle(contract, by_customer.values(), period=period, ledger=point).report
    problems, resolved = report.units, report.outcomes["ai_resolution"]
    latencies.sort()
    total_calls = sum(calls.values())
    return {
        "serve": serve,
        "problems": problems,
        "resolved": resolved,
        "resolution_rate": round(resolved / problems, 4),
        "model_cost": str(report.model_cost),
        "model_cost_per_interaction": _money(report.model_cost / problems),
        "cost_per_resolved_outcome": _money(report.model_cost / resolved),
        "billed": str(report.billed),
        "margin_per_resolved_outcome": _money(report.margin / resolved),
        "margin_per_1000_problems": str(
            (report.margin * 1000 / problems).quantize(Decimal("0.01"))
        ),
        "share_per_tier": {tier: round(calls[tier] / total_calls, 4) for tier in sorted(calls)},
        "model_calls": total_calls,
        "model_call_p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    arguments = parser.parse_args()
    load = os.getloadavg()
    rows = [run(serve, arguments.conversations) for serve in SERVING]
    header = (
        f"{'serving':<8} {'resolved':>9} {'cost/interaction':>17} {'cost/resolution':>16} "
        f"{'margin/resolution':>18} {'margin/1000':>12} {'p95 call':>9}  share per tier"
    )
    print(header)
    for row in rows:
        shares = ", ".join(f"{tier} {share:.0%}" for tier, share in row["share_per_tier"].items())
        print(
            f"{row['serve']:<8} {row['resolution_rate']:>9.1%} "
            f"{row['model_cost_per_interaction']:>17} "
            f"{row['cost_per_resolved_outcome']:>16} {row['margin_per_resolved_outcome']:>18} "
            f"{row['margin_per_1000_problems']:>12} {row['model_call_p95_ms']:>7}ms  {shares}"
        )
    by_serve = {row["serve"]: row for row in rows}
    router, large = by_serve["router"], by_serve["large"]
    saving = 1 - Decimal(router["model_cost_per_interaction"]) / Decimal(
        large["model_cost_per_interaction"]
    )
    print(f"router vs large only: {saving:.1%} lower model cost per interaction")
    tiering = Tiering()
    result = {
        "what": "one seeded simulated month served three ways, ingested and settled under "
        f"{CONTRACT.relative_to(ROOT)}; resolutions are billed ones",
        "conversations": arguments.conversations,
        "seed": SEED,
        "assumed_p_resolved": {"small": tiering.small._asdict(), "large": tiering.large._asdict()},
        "router_target": tiering.target,
        "router_vs_large_cost_per_interaction_lower": round(float(saving), 4),
        "rows": rows,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in load],
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
