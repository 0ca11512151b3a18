"""`raas import tau-bench|openai-jsonl|otlp-json FILE`: existing agent logs into the ledger (or
to standard output as NDJSON events), with every thing not imported counted on standard error."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.markup import escape

from raas.ingest.importers import (
    START_DEFAULT,
    Imported,
    import_openai_jsonl,
    import_otlp_json,
    import_tau_bench,
)
from raas.ingest.validate import BATCH_EVENTS_MAX
from raas.ledger.sqlite import SqliteLedger

console = Console(stderr=True, soft_wrap=True, highlight=False)
stdout = Console(soft_wrap=True, highlight=False)

_file_argument = click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_tenant_option = click.option(
    "--tenant", required=True, help="The buyer the imported work was done for."
)
_database_option = click.option(
    "--db",
    "database",
    type=click.Path(dir_okay=False, path_type=Path),
    default="raas.db",
    show_default=True,
    envvar="RAAS_DB",
    help="The embedded ledger (SQLite file) to append to.",
)
_out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the events as NDJSON to this file (- for standard output) instead of the ledger.",
)
_start_option = click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=START_DEFAULT.strftime("%Y-%m-%d"),
    show_default=True,
    help="Where runs without times are laid out (UTC): one hour a run, one second a message.",
)


@click.group("import")
def import_group() -> None:
    """Import existing agent logs as events, to judge past traffic under a contract.

    Whatever cannot be represented is counted and listed, never dropped silently; importing the
    same file again stores nothing twice.
    """


@import_group.command("tau-bench")
@_file_argument
@_tenant_option
@_start_option
@_database_option
@_out_option
def tau_bench(file: Path, tenant: str, start: datetime, database: Path, out: Path | None) -> None:
    """τ-bench results FILE (a JSON list of runs with task_id, trial, reward, traj)."""
    imported = import_tau_bench(file.read_bytes(), tenant=tenant, start=_utc(start))
    _finish(file, imported, database, out)


@import_group.command("openai-jsonl")
@_file_argument
@_tenant_option
@_start_option
@_database_option
@_out_option
def openai_jsonl(
    file: Path, tenant: str, start: datetime, database: Path, out: Path | None
) -> None:
    """OpenAI-style chat transcripts FILE, one {"messages": [...]} conversation a line."""
    imported = import_openai_jsonl(file.read_bytes(), tenant=tenant, start=_utc(start))
    _finish(file, imported, database, out)


@import_group.command("otlp-json")
@_file_argument
@_tenant_option
@_database_option
@_out_option
def otlp_json(file: Path, tenant: str, database: Path, out: Path | None) -> None:
    """OTLP JSON trace FILE (one export request, or one a line) with GenAI spans."""
    _finish(file, import_otlp_json(file.read_bytes(), tenant=tenant), database, out)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _finish(file: Path, imported: Imported, database: Path, out: Path | None) -> None:
    events = imported.events
    if out is not None:
        lines = b"".join(msgspec.json.encode(event) + b"\n" for event in events)
        if str(out) == "-":
            sys.stdout.buffer.write(lines)
            sys.stdout.flush()
        else:
            out.write_bytes(lines)
        where = "standard output" if str(out) == "-" else str(out)
        console.print(f"{escape(str(file))}: {len(events):,} events written to {escape(where)}")
    else:
        stored = duplicates = 0
        with SqliteLedger(database) as ledger:
            for start in range(0, len(events), BATCH_EVENTS_MAX):
                receipt = ledger.append(events[start : start + BATCH_EVENTS_MAX])
                stored += receipt.stored
                duplicates += receipt.duplicates
        console.print(
            f"{escape(str(file))}: {len(events):,} events, {stored:,} stored, "
            f"{duplicates:,} already in the ledger"
        )
    _print_warnings(imported.warnings)


def _print_warnings(warnings: dict[str, int]) -> None:
    if not warnings:
        return
    console.print("not imported as such (count, what):")
    for warning, count in sorted(warnings.items(), key=lambda item: (-item[1], item[0])):
        console.print(f"  {count:>7,}  {escape(warning)}")
