"""Router benchmark: train on the MMLU training subjects, evaluate on the held-out subjects.

Prints the table and writes bench/results/router.json: accuracy at 10%..90% strong calls, APGR,
CPT(50%) and CPT(80%) for the router and for a random router at equal cost, the best possible
router, decision latency p50/p99 over >= 10,000 in-process decisions (features, per-tier
estimates and policy; model loading excluded), and, for a sense of the spread, the same router
trained and evaluated on each of four subject folds in turn.

    .venv/bin/python bench/router.py [--data /work/shared/data/routellm-mmlu] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from raas.router.evaluate import Evaluation, evaluate_rows, time_decisions
from raas.router.features import FeatureConfig
from raas.router.model import Predictor, TrainingInfo, load, save
from raas.router.routellm import (
    DEFAULT_DATA,
    EVALUATION_SUBJECTS,
    TRAINING_SUBJECTS,
    Row,
    examples_from_rows,
    read_dataset,
    subject_folds,
)
from raas.router.train import L2_DEFAULT, train

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
RESULTS = Path(__file__).resolve().parent / "results" / "router.json"
# RouteLLM's published reference points for this data (SOURCE.txt beside the data): all of
# MMLU, weak and strong accuracy, the random router, the best possible router.
PUBLISHED = {
    "weak_accuracy": 0.681,
    "strong_accuracy": 0.806,
    "random_apgr": 0.5,
    "best_possible_accuracy": 0.859,
    "best_possible_strong_share": 0.178,
}


def fit(rows: list[Row], config: FeatureConfig, inputs: list[str]) -> Predictor:
    """Train on `rows`, save, load back: the evaluation uses the model as a gateway would."""
    info = TrainingInfo(source="routellm", inputs=inputs, rows=len(rows), l2=L2_DEFAULT)
    model = train(examples_from_rows(rows, WEAK, STRONG, config), config, info)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "router.json"
        save(model, path)
        size = path.stat().st_size
        started = time.perf_counter()
        loaded = load(path)
        load_seconds = time.perf_counter() - started
    print(f"  model file {size / 1e6:.1f} MB, loaded in {load_seconds * 1e3:.0f} ms")
    return Predictor(loaded)


def random_apgr_range(rows: list[Row], shuffles: int = 1_000) -> tuple[float, float, float]:
    """The random router's APGR over `shuffles` seeded random orders: 2.5%, 50%, 97.5%
    quantiles. The expected value is 0.5; the spread says how far luck alone goes."""
    generator = np.random.default_rng(20261125)
    weak = np.array([row.weak for row in rows], dtype=np.int64)
    gain = np.array([row.strong for row in rows], dtype=np.int64) - weak
    count, gap = len(rows), int(gain.sum())
    results = []
    for _ in range(shuffles):
        recovered = np.concatenate(([0], np.cumsum(gain[generator.permutation(count)]))) / gap
        # trapezoids over shares 0, 1/n, ..., 1
        results.append(float((recovered[1:] + recovered[:-1]).sum() / (2 * count)))
    low, middle, high = np.quantile(results, [0.025, 0.5, 0.975])
    return float(low), float(middle), float(high)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(evaluation: Evaluation) -> None:
    router, random = evaluation.router, evaluation.random
    print(
        f"\nheld-out subjects: {evaluation.rows:,} questions; "
        f"weak {percent(evaluation.weak_accuracy)}"
        f", strong {percent(evaluation.strong_accuracy)}, best possible "
        f"{percent(evaluation.oracle_best_accuracy)} at {percent(evaluation.oracle_best_share)}"
        " strong calls"
    )
    print(f"{'strong calls':>12}  {'router':>8}  {'random':>8}")
    for share, accuracy in router.accuracy_at.items():
        print(f"{share:>12}  {percent(accuracy):>8}  {percent(random.accuracy_at[share]):>8}")
    print(f"{'APGR':>12}  {number(router.apgr):>8}  {number(random.apgr):>8}")
    print(
        f"{'APGR 11 pts':>12}  {number(router.apgr_11_points):>8}  "
        f"{number(random.apgr_11_points):>8}"
    )
    print(f"{'CPT(50%)':>12}  {percent(router.cpt_50):>8}  {percent(random.cpt_50):>8}")
    print(f"{'CPT(80%)':>12}  {percent(router.cpt_80):>8}  {percent(random.cpt_80):>8}")
    latency = evaluation.latency
    print(
        f"decision latency over {latency.decisions:,} decisions: p50 {latency.p50_ms:.3f} ms, "
        f"p99 {latency.p99_ms:.3f} ms, mean {latency.mean_ms:.3f} ms (wall clock); "
        f"CPU time p50 {latency.cpu_p50_ms or 0:.3f} ms, p99 {latency.cpu_p99_ms or 0:.3f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="skip the four-fold cross-validation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    if arguments.decisions < 10_000:
        parser.error("--decisions: at least 10,000, so that p99 rests on 100 decisions or more")

    config = FeatureConfig()
    dataset = read_dataset([arguments.data], WEAK, STRONG)
    rows = dataset.rows
    print(
        f"{len(rows):,} questions from {len(dataset.files)} files, "
        f"{dataset.contaminated_excluded} contaminated prompts excluded"
    )
    training = [row for row in rows if row.subject in TRAINING_SUBJECTS]
    evaluation_rows = [row for row in rows if row.subject in EVALUATION_SUBJECTS]
    seen = {row.prompt for row in training}
    overlap = sum(1 for row in evaluation_rows if row.prompt in seen)
    evaluation_rows = [row for row in evaluation_rows if row.prompt not in seen]
    print(
        f"training: {len(TRAINING_SUBJECTS)} subjects, {len(training):,} questions; evaluation: "
        f"{len(EVALUATION_SUBJECTS)} subjects, {len(evaluation_rows):,} questions "
        f"({overlap} also in training, dropped)"
    )
    started = time.perf_counter()
    predictor = fit(training, config, [str(arguments.data)])
    training_seconds = time.perf_counter() - started
    print(f"  trained in {training_seconds:.1f} s")
    # As a server does after start-up: what is loaded stays out of the collector's walks.
    gc.collect()
    gc.freeze()
    load_before = os.getloadavg()
    evaluation = evaluate_rows(
        predictor, evaluation_rows, WEAK, STRONG, latency_decisions=arguments.decisions
    )
    load_after = os.getloadavg()
    # Two cores shared with whatever else runs: repeat the timing, so a reader can tell a noisy
    # minute from the decision's own cost (the CPU time hardly moves; the wall-clock tail does).
    rounds = []
    for _ in range(3):
        latency = time_decisions(predictor, evaluation_rows, WEAK, STRONG, 10_000)
        rounds.append({**msgspec.to_builtins(latency), "load_average_1min": os.getloadavg()[0]})
    gc.unfreeze()
    print_table(evaluation)
    for number_, entry in enumerate(rounds, start=1):
        print(
            f"  timing round {number_}: p50 {entry['p50_ms']:.3f} ms, p99 {entry['p99_ms']:.3f} "
            f"ms wall; CPU p99 {entry['cpu_p99_ms']:.3f} ms; load {entry['load_average_1min']:.1f}"
        )
    spread = random_apgr_range(evaluation_rows)
    print(
        f"random router APGR over 1,000 shuffles: 95% between {spread[0]:.3f} and "
        f"{spread[2]:.3f} (median {spread[1]:.3f})"
    )

    folds: list[dict[str, Any]] = []
    if not arguments.quick:
        print("\nfour-fold cross-validation by subject (fold 2 is the split above):")
        for number_, subjects in enumerate(subject_folds(4)):
            held_out = set(subjects)
            fold_training = [row for row in rows if row.subject not in held_out]
            known = {row.prompt for row in fold_training}
            fold_evaluation = [
                row for row in rows if row.subject in held_out and row.prompt not in known
            ]
            fold_predictor = fit(fold_training, config, [str(arguments.data)])
            result = evaluate_rows(
                fold_predictor, fold_evaluation, WEAK, STRONG, latency_decisions=1
            )
            folds.append(
                {
                    "fold": number_,
                    "subjects": list(subjects),
                    "rows": result.rows,
                    "weak_accuracy": result.weak_accuracy,
                    "strong_accuracy": result.strong_accuracy,
                    "apgr": result.router.apgr,
                    "cpt_50": result.router.cpt_50,
                    "cpt_80": result.router.cpt_80,
                }
            )
            print(
                f"  fold {number_}: {result.rows:,} questions, APGR {number(result.router.apgr)}, "
                f"CPT(50%) {percent(result.router.cpt_50)}, "
                f"CPT(80%) {percent(result.router.cpt_80)}"
            )

    output = {
        "benchmark": "router",
        "command": "python bench/router.py" + (" --quick" if arguments.quick else ""),
        "data": str(arguments.data),
        "weak": WEAK,
        "strong": STRONG,
        "split": {
            "rule": "MMLU subjects sorted alphabetically; evaluation = positions 2, 6, 10, ...",
            "training_subjects": list(TRAINING_SUBJECTS),
            "evaluation_subjects": list(EVALUATION_SUBJECTS),
            "training_rows": len(training),
            "evaluation_rows": len(evaluation_rows),
            "evaluation_rows_dropped_as_seen_in_training": overlap,
            "contaminated_excluded": dataset.contaminated_excluded,
        },
        "features": msgspec.to_builtins(config),
        "l2": L2_DEFAULT,
        "training_seconds": round(training_seconds, 1),
        "evaluation": msgspec.to_builtins(evaluation),
        "random_router_apgr_95_percent_range_1000_shuffles": [spread[0], spread[2]],
        "latency_rounds": rounds,
        "cross_validation": folds,
        "published_reference_all_mmlu": PUBLISHED,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # Other work on the machine shows in the wall-clock tail, not in the CPU time.
            "load_average_1min_before_after_latency": [load_before[0], load_after[0]],
        },
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
