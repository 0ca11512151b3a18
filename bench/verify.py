"""Benchmark of evidence: settle a simulated month into a SQLite ledger, export the invoice's
evidence bundle, then read and verify it as the auditor does (signature, every inclusion proof
and disclosure, the invoice re-derived). Prints medians of several runs and writes
bench/results/verify.json.

    .venv/bin/python bench/verify.py [--conversations 5000] [--runs 5] [--complete]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raas.audit.bundle import Scope, decode_bundle, encode_bundle
from raas.audit.verify import verify_bundle
from raas.core.contract import load_contract
from raas.core.invoice import invoice_json
from raas.core.periods import month_period
from raas.engine.reference import settle_from_ledger
from raas.ledger.evidence import export_bundle
from raas.ledger.keys import VerifierKey, generate, parse_signer_key, parse_verifier_key
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
RESULTS = ROOT / "bench" / "results" / "verify.json"


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def one_run(
    ledger: SqliteLedger, invoice_id: str, contract_text: str, scope: Scope, verifier: VerifierKey
) -> dict[str, float]:
    export_seconds, bundle = timed(
        lambda: export_bundle(ledger, invoice_id, contract_text, scope=scope)
    )
    encode_seconds, data = timed(lambda: encode_bundle(bundle))
    decode_seconds, decoded = timed(lambda: decode_bundle(data))
    verify_seconds, report = timed(lambda: verify_bundle(decoded, [verifier]))
    assert report.ok, list(report.lines())
    return {
        "export_seconds": export_seconds,
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "verify_seconds": verify_seconds,
        "entries": len(bundle.entries),
        "bundle_bytes": len(data),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--complete", action="store_true", help="bundle the whole log")
    arguments = parser.parse_args()

    contract_text = CONTRACT.read_text(encoding="utf-8")
    contract = load_contract(CONTRACT)
    signer_text, verifier_text = generate("bench-log")
    signer, verifier = parse_signer_key(signer_text), parse_verifier_key(verifier_text)
    scope: Scope = "log" if arguments.complete else "customers"

    with (
        tempfile.TemporaryDirectory() as folder,
        SqliteLedger(Path(folder) / "ledger.db", vendor="bench") as ledger,
    ):
        simulation = Simulation(SimConfig(seed=7, conversations=arguments.conversations))
        for batch in simulation.batches():
            ledger.append(batch)
        ledger.sign_checkpoint(contract.buyer, signer)
        size = ledger.head(contract.buyer)
        period = month_period(contract.time_zone, 2026, 11)
        invoice = settle_from_ledger(ledger, contract, period, size=size).invoice
        ledger.store_invoice(invoice.id, contract.buyer, invoice_json(invoice))

        runs = [
            one_run(ledger, invoice.id, contract_text, scope, verifier)
            for _ in range(arguments.runs)
        ]

    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    entries = int(median["entries"])
    result = {
        "conversations": arguments.conversations,
        "log_size": size,
        "scope": scope,
        "runs": arguments.runs,
        "median": median,
        "verify_entries_per_second": entries / median["verify_seconds"],
        "bundle_bytes_per_entry": median["bundle_bytes"] / entries,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    print(
        f"log of {size:,} entries, bundle ({scope}) of {entries:,} entries, "
        f"{median['bundle_bytes'] / 1e6:.1f} MB\n"
        f"median of {arguments.runs}: export {median['export_seconds']:.2f} s, "
        f"encode {median['encode_seconds']:.2f} s, decode {median['decode_seconds']:.2f} s, "
        f"verify {median['verify_seconds']:.2f} s "
        f"({result['verify_entries_per_second']:,.0f} entries/s, invoice re-derived)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
