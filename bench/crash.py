"""Crash safety at length: SIGKILL a sending process at random moments, 100 times or more.

The test suite does 20 runs (tests/ledger/test_sqlite_crash.py); this runs the same driver as
often as asked. After every kill the ledger is reopened and must pass the full check behind
`raas ledger check` (entries, disclosures, leaves, frontiers, customer rows, checkpoints and
their signatures), every acknowledged batch must be there exactly once and no batch torn.
Half the senders append batch by batch, half through `append_batches`. Prints the counts and
writes bench/results/crash.json.

    .venv/bin/python bench/crash.py [--runs 100] [--seed 1] [--kill-after-max 0.08]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "bench" / "results" / "crash.json"
sys.path.insert(0, str(ROOT / "tests" / "ledger"))

from test_sqlite_crash import run_crashes  # noqa: E402  (the test's driver, found just above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kill-after-max", type=float, default=0.08, help="seconds; kills land in [0, this)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    arguments = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        counts = run_crashes(
            Path(folder) / "ledger.db", arguments.runs, arguments.seed, arguments.kill_after_max
        )
    seconds = time.perf_counter() - started
    summary = {
        "benchmark": "crash: SIGKILL a sender, reopen, full ledger check, acknowledged == stored",
        **counts,
        "all_runs_passed": True,  # run_crashes raises at the first run that does not
        "seed": arguments.seed,
        "kill_after_seconds_max": arguments.kill_after_max,
        "seconds": round(seconds, 1),
        "machine": {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    print(
        f"{counts['runs']} kills: {counts['acknowledged_batches']:,} batches acknowledged, "
        f"{counts['stored_batches']:,} stored in the end, {counts['checkpoints']} checkpoints; "
        f"every check passed ({seconds:.0f} s)"
    )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
