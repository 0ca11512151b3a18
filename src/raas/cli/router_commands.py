"""`raas router ...`: train the router from the ledger or from RouteLLM CSVs, and evaluate it."""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import click
import msgspec

from raas.cli.ledger_location import LedgerLocation
from raas.core.contract import load_contract
from raas.ledger import open_ledger
from raas.router.features import FeatureConfig
from raas.router.model import Predictor, RouterError, TrainingInfo, load, save

# Training and evaluation need NumPy; they are imported by the commands that use them, so that
# the rest of `raas` starts without it (and faster).
DEFAULT_DATA = "/work/shared/data/routellm-mmlu"
L2_DEFAULT = 1e-3  # raas.router.train.L2_DEFAULT, checked equal by the tests
Split = Literal["all", "train", "eval"]

_SPLITS = click.Choice(["all", "train", "eval"])


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(msgspec.to_builtins(data), indent=2, sort_keys=False))


@click.group()
def router() -> None:
    """Train and evaluate the router that picks a tier per request."""


data_option = click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="RouteLLM CSV file or directory of them (repeatable).",
)
weak_option = click.option("--weak", help="The weak model's correctness column.")
strong_option = click.option("--strong", help="The strong model's correctness column.")
split_option = click.option(
    "--split",
    type=_SPLITS,
    default="all",
    show_default=True,
    help="Keep one part of the fixed MMLU subject split (files named mmlu_<subject>.csv).",
)


@router.command(name="train")
@data_option
@weak_option
@strong_option
@split_option
@click.option(
    "--db",
    "database",
    type=LedgerLocation(exists=True),
    help="Learn from this ledger (SQLite file or postgresql:// URL) instead of CSVs.",
)
@click.option(
    "--contract",
    "contract_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The contract that judges the ledger's episodes (with --db).",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    help="With --db: learn from outcomes final at this time (default: the last event's time).",
)
@click.option(
    "--no-text",
    "no_text",
    is_flag=True,
    help="With --db: never read message text (intent, channel and turn features only).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the model (JSON).",
)
@click.option(
    "--l2", type=click.FloatRange(min=0, min_open=True), default=L2_DEFAULT, show_default=True
)
def train_command(
    data: tuple[Path, ...],
    weak: str | None,
    strong: str | None,
    split: Split,
    database: str | None,
    contract_path: Path | None,
    as_of: datetime | None,
    no_text: bool,
    out: Path,
    l2: float,
) -> None:
    """Fit the router and write it to OUT; print what it learned from as JSON.

    From the ledger: raas router train --db raas.db --contract acme.yaml --out router.json

    From RouteLLM CSVs: raas router train --data DIR --weak COL --strong COL --out router.json
    """
    from raas.router.ledger import examples_from_ledger
    from raas.router.routellm import examples_from_rows, read_dataset
    from raas.router.train import train

    config = FeatureConfig()
    if data and database is None:
        if not weak or not strong:
            raise click.UsageError("--data needs --weak and --strong (the correctness columns)")
        dataset = read_dataset(data, weak, strong, split=split)
        examples = examples_from_rows(dataset.rows, weak, strong, config)
        info = TrainingInfo(
            source="routellm",
            inputs=[str(path) for path in dataset.files],
            rows=len(dataset.rows),
            l2=l2,
            notes=[
                f"split {split}",
                f"{dataset.contaminated_excluded} contaminated prompts excluded"
                + (f" ({dataset.contaminated_file})" if dataset.contaminated_file else ""),
            ],
        )
        model = train(examples, config, info, l2=l2, on_tier=_progress)
        save(model, out)
        _echo_json(
            {
                "model": str(out),
                "source": "routellm",
                "files": len(dataset.files),
                "rows": len(dataset.rows),
                "contaminated_excluded": dataset.contaminated_excluded,
                "tiers": _tier_summary(model.tiers),
            }
        )
        return
    if database is not None and not data:
        if contract_path is None:
            raise click.UsageError("--db needs --contract (the contract that judges outcomes)")
        if as_of is not None and as_of.utcoffset() is None:
            raise click.BadParameter("expected a time with its UTC offset", param_hint="--as-of")
        contract = load_contract(contract_path)
        with open_ledger(database) as ledger:
            examples, report = examples_from_ledger(
                ledger, contract, config, as_of=as_of, reveal_text=not no_text
            )
        if not examples:
            raise RouterError(
                f"{database}: no final episode with a model call for buyer {contract.buyer!r} "
                f"(as of {report.as_of}); nothing to learn from"
            )
        notes = [f"contract {contract.contract} v{contract.version}", f"as of {report.as_of}"]
        if report.text_committed or report.text_absent:
            notes.append(
                f"{report.text_committed + report.text_absent} of {report.final} episodes had no "
                "readable first message (committed or absent): intent, channel and turn features "
                "only for those"
            )
        info = TrainingInfo(
            source="ledger", inputs=[str(database)], rows=report.final, l2=l2, notes=notes
        )
        model = train(examples, config, info, l2=l2, on_tier=_progress)
        save(model, out)
        _echo_json(
            {
                "model": str(out),
                "source": "ledger",
                "report": report,
                "notes": notes,
                "tiers": _tier_summary(model.tiers),
            }
        )
        return
    raise click.UsageError(
        "give either --data (with --weak and --strong) or --db (with --contract), not both"
    )


@router.command(name="eval")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help=f"RouteLLM CSV file or directory (repeatable). Default: {DEFAULT_DATA}",
)
@click.option("--weak", required=True, help="The weak model's correctness column.")
@click.option("--strong", required=True, help="The strong model's correctness column.")
@split_option
@click.option(
    "--decisions",
    type=click.IntRange(min=1),
    default=None,
    help="Decisions to time for the latency figures (default: one per row, at least 1,000).",
)
def eval_command(
    model_path: Path,
    data: tuple[Path, ...],
    weak: str,
    strong: str,
    split: Split,
    decisions: int | None,
) -> None:
    """Evaluate a model on RouteLLM CSVs; print JSON (accuracy at 10%..90% strong calls, APGR,
    CPT(50%), CPT(80%), the same for a random router, decision latency p50/p99)."""
    from raas.router.evaluate import evaluate_rows
    from raas.router.routellm import read_dataset

    model = load(model_path)
    dataset = read_dataset(data or (DEFAULT_DATA,), weak, strong, split=split)
    predictor = Predictor(model)
    # What a server does after start-up: move what is loaded out of the collector's sight, so
    # that a full collection does not walk the data set in the middle of a timed decision.
    gc.collect()
    gc.freeze()
    evaluation = evaluate_rows(predictor, dataset.rows, weak, strong, latency_decisions=decisions)
    result = msgspec.to_builtins(evaluation)
    result = {
        "model": str(model_path),
        "files": len(dataset.files),
        "split": split,
        "contaminated_excluded": dataset.contaminated_excluded,
        **result,
    }
    _echo_json(result)


def _progress(tier: str, report: Any) -> None:
    # Training takes tens of seconds on a large data set: say what finished, on stderr, so that
    # stdout stays one JSON document.
    click.echo(
        f"trained tier {tier!r}: {report.iterations} iterations, loss {report.loss:.4f}", err=True
    )


def _tier_summary(tiers: Any) -> dict[str, dict[str, float | int]]:
    return {
        name: {
            "examples": weights.examples,
            "resolved_share": weights.resolved / weights.examples if weights.examples else 0.0,
            "weights": len(weights.indices),
        }
        for name, weights in tiers.items()
    }
