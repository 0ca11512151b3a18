"""`raas ...`: parse options, call the library, render the result. Nothing else lives here."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from raas.cli.audit_commands import contract_versions_option, evidence, verify
from raas.cli.db_commands import db
from raas.cli.dispute_commands import dispute
from raas.cli.gateway_commands import gateway
from raas.cli.import_commands import import_group
from raas.cli.ledger_commands import checkpoint, keys, ledger
from raas.cli.ledger_location import LedgerLocation
from raas.cli.router_commands import router
from raas.cli.service_commands import apikey, serve
from raas.core.contract import Contract, load_contract
from raas.core.invoice import invoice_file_stem, invoice_json
from raas.core.periods import Period, parse_period, period_containing
from raas.core.settle import Settlement
from raas.engine.on_ledger import (
    ENGINE_DEFAULT,
    ENGINES,
    Engine,
    episode_tables_for,
    settle_on_engine,
)
from raas.errors import RaasError
from raas.ingest.files import ingest_file
from raas.ingest.validate import parse_batch
from raas.ledger import open_ledger
from raas.ledger.checkpoint import stated_checkpoint
from raas.ledger.keys import SignerKey, load_signer_key, write_signer_key
from raas.ledger.keys import generate as generate_keys
from raas.service.pages import render_invoice_html
from raas.sim import SimConfig, Simulation

if TYPE_CHECKING:
    from raas.ledger import Ledger

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
DEMO_CONTRACT = REPOSITORY_ROOT / "examples" / "contracts" / "acme-support.yaml"
DATABASE_DEFAULT = "raas.db"
_CENT = Decimal("0.01")

# Soft wrap: lines a script greps for must not be cut at the terminal's width.
console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _Group(click.Group):
    """Turns raas errors into one clear line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RaasError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Group)
@click.version_option(package_name="raas")
def main() -> None:
    """raas: bill AI agents by verified outcome."""


database_option = click.option(
    "--db",
    "database",
    type=LedgerLocation(),
    default=DATABASE_DEFAULT,
    show_default=True,
    envvar="RAAS_DB",
    help="The ledger: a SQLite file, or postgresql://user@host:port/database.",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=ENGINE_DEFAULT,
    show_default=True,
    envvar="RAAS_ENGINE",
    help="Settle on DuckDB (in-process, from episode tables on disk, updated incrementally), "
    "on Spark (when one machine is not enough), or with the pure reference judge. The invoice "
    "is the same byte for byte.",
)
spark_master_option = click.option(
    "--spark-master",
    default="local[*]",
    show_default=True,
    envvar="RAAS_SPARK_MASTER",
    help="With --engine spark: local[*], local[N], or a cluster's URL (spark://host:7077).",
)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@database_option
def ingest(files: tuple[str, ...], database: str) -> None:
    """Append events from FILES (a JSON array, or NDJSON named .ndjson or .jsonl).

    Each file is validated whole first: if any event in it is bad, nothing of it is stored.
    Appending the same file again stores nothing twice.
    """
    with open_ledger(database) as ledger:
        for name in files:
            receipt = ingest_file(ledger, Path(name))
            stdout.print(
                f"{name}: {receipt.stored:,} stored, {receipt.duplicates:,} already in the ledger"
            )


@main.command()
@click.option("--conversations", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the events as NDJSON to this file instead of ingesting them.",
)
@database_option
def simulate(conversations: int, seed: int, out: Path | None, database: str) -> None:
    """Simulate a month of AI customer service, seeded, and ingest it (or write it as NDJSON)."""
    simulation = _simulation(conversations, seed)
    if out is not None:
        _write_workload(simulation, out)
        return
    with open_ledger(database) as ledger:
        stored, duplicates = _simulate_into(ledger, simulation)
    stdout.print(
        f"{stored:,} events stored in {database}, {duplicates:,} duplicate deliveries ignored"
    )


@main.command()
@contract_versions_option("A contract file; repeat it for each version of the contract.")
@click.option("--period", "period_label", required=True, help="The billing month, YYYY-MM.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the invoice's JSON and HTML: invoice-<buyer>_<invoice id>.json and .html "
    "(buyers whose contracts share a name share invoice ids, so the buyer tells them apart).",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signer key: sign a checkpoint of the buyer's log now and settle at it. "
    "Default: settle at the latest signed checkpoint.",
)
@engine_option
@spark_master_option
@database_option
@click.option(
    "--table-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="RAAS_TABLE_DIR",
    help="Folder of the episode tables (DuckDB and Spark). Default: beside a SQLite ledger; "
    "for PostgreSQL, $XDG_DATA_HOME/raas/episode-tables (~/.local/share/raas/episode-tables). "
    "Files are named after the ledger, so ledgers may share a folder.",
)
def settle(
    contract_paths: tuple[Path, ...],
    period_label: str,
    out: Path,
    key_path: Path | None,
    engine: Engine,
    spark_master: str,
    database: str,
    table_dir: Path | None,
) -> None:
    """Settle CONTRACT for one billing period at a signed checkpoint; issue and write the invoice.

    The invoice is stored as issued: settling the same period again at the same checkpoint gives
    the same bytes, and an issued invoice is never replaced. With several versions of the
    contract, each rates the part of the period it is in force for. What changed since the
    contract's earlier invoices were issued (late events, reopened outcomes, upheld disputes)
    becomes the invoice's adjustments.

    DuckDB and Spark settle from episode tables kept in --table-dir, by default beside a SQLite
    ledger and for PostgreSQL in $XDG_DATA_HOME/raas/episode-tables: the first settlement
    builds them, later ones add only what changed.
    """
    versions = [load_contract(path) for path in contract_paths]
    contract = max(versions, key=lambda version: version.version)
    try:
        period = parse_period(period_label, contract.time_zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--period") from error
    signer = load_signer_key(key_path) if key_path is not None else None
    with open_ledger(database) as ledger:
        settlement, note = _settle(
            ledger,
            versions,
            period,
            signer,
            _Where(engine, episode_tables_for(database, table_dir), spark_master),
        )
    json_path, html_path = _write_invoice(settlement, out)
    _print_summary(settlement, conversations_simulated=None)
    stdout.print(f"invoice:    {json_path}\n            {html_path}")
    stdout.print(f"settled at checkpoint\n{note}", end="")


@main.command()
@click.option("--conversations", type=click.IntRange(min=1), default=50_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
)
@click.option(
    "--contract",
    "contract_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"Default: {DEMO_CONTRACT.relative_to(REPOSITORY_ROOT)}",
)
@engine_option
@spark_master_option
def demo(
    conversations: int,
    seed: int,
    out: Path,
    contract_path: Path | None,
    engine: Engine,
    spark_master: str,
) -> None:
    """Simulate a month, ingest it, settle it at a signed checkpoint and write the invoice.

    Starts afresh in OUT each time: a new ledger and a new signing key for the vendor.
    """
    contract = load_contract(contract_path or DEMO_CONTRACT)
    out.mkdir(parents=True, exist_ok=True)
    database = out / "ledger.db"
    keys_folder = out / "keys"
    signer_path = keys_folder / f"{contract.vendor}.key"
    verifier_path = keys_folder / f"{contract.vendor}.pub"
    tables = episode_tables_for(database)
    for path in (
        database,
        Path(f"{database}-wal"),
        Path(f"{database}-shm"),
        signer_path,
        *out.glob(f"{database.name}.*.episodes.duckdb*"),
    ):
        path.unlink(missing_ok=True)
    keys_folder.mkdir(exist_ok=True)
    signer_text, verifier_text = generate_keys(contract.vendor)
    write_signer_key(signer_path, signer_text)
    verifier_path.write_text(verifier_text + "\n", encoding="utf-8")
    simulation = _simulation(conversations, seed, tenant=contract.buyer)
    with open_ledger(database, vendor=contract.vendor) as ledger:
        _simulate_into(ledger, simulation)
        period = period_containing(simulation.config.start_utc, contract.time_zone)
        settlement, note = _settle(
            ledger,
            [contract],
            period,
            load_signer_key(signer_path),
            _Where(engine, tables, spark_master),
        )
    json_path, html_path = _write_invoice(settlement, out)
    _print_summary(settlement, conversations_simulated=simulation.summary.conversations)
    invoice = settlement.invoice
    stdout.print(
        f"invoice:    {json_path}\n            {html_path}\n"
        f"ledger:     {database}\n"
        f"checkpoint: {note.splitlines()[0]} at size {stated_checkpoint(note).size:,} "
        f"(verifier key {verifier_path})"
    )
    billed = next((line.episodes[0] for line in invoice.lines if line.episodes), None)
    if billed is not None:
        stdout.print(
            "check a billed episode offline, with nothing but its receipt and the public key:\n"
            f"  raas evidence receipt {invoice.id} --episode '{billed}' --db {database} "
            f"--contract {contract_path or DEMO_CONTRACT} --out episode.receipt.json\n"
            f"  raas verify episode.receipt.json --key {verifier_path}"
        )


main.add_command(evidence)
main.add_command(verify)
for command in (keys, checkpoint, ledger):
    main.add_command(command)


def _simulation(conversations: int, seed: int, tenant: str = "acme") -> Simulation:
    try:
        return Simulation(SimConfig(conversations=conversations, seed=seed, tenant=tenant))
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _simulated_batches(simulation: Simulation, description: str) -> Iterator[bytes]:
    """The simulation's NDJSON batches, with a progress bar over the simulated month."""
    config = simulation.config
    start, end = config.start_utc, config.end_utc
    hours_total = int((end - start).total_seconds() // 3600)
    with _progress() as progress:
        task = progress.add_task(description, total=hours_total)
        for body in simulation.ndjson_batches():
            yield body
            hours = int((min(simulation.simulated_until, end) - start).total_seconds() // 3600)
            progress.update(task, completed=max(hours, 0))
        progress.update(task, completed=hours_total)


def _simulate_into(ledger: Ledger, simulation: Simulation) -> tuple[int, int]:
    stored = duplicates = 0
    # As a stream, so each batch is simulated and parsed while the one before commits.
    batches = _simulated_batches(simulation, "simulate and ingest")
    for receipt in ledger.append_batches(parse_batch(body, ndjson=True) for body in batches):
        stored += receipt.stored
        duplicates += receipt.duplicates
    return stored, duplicates


def _write_workload(simulation: Simulation, out: Path) -> None:
    with out.open("wb") as file:
        for body in _simulated_batches(simulation, "simulate"):
            file.write(body)
    stdout.print(f"wrote {out}")


class _Where(NamedTuple):
    """Which engine settles, where its episode tables live, and which Spark it runs on."""

    engine: Engine
    tables: tuple[Path, str]
    spark_master: str


def _settle(
    ledger: Ledger,
    versions: Sequence[Contract],
    period: Period,
    signer: SignerKey | None,
    where: _Where,
) -> tuple[Settlement, str]:
    """Settle at a signed checkpoint of the buyer's log, with adjustments of the invoices issued
    before, and store the invoice as issued."""
    tenant = versions[0].buyer
    if signer is not None:
        note = ledger.sign_checkpoint(tenant, signer)
    else:
        latest = ledger.latest_checkpoint(tenant)
        if latest is None:
            raise click.ClickException(
                f"the log of {tenant!r} has no signed checkpoint: pass --key SIGNER_KEY to sign "
                "one now, or sign one with `raas checkpoint`"
            )
        note = latest
    read = stated_checkpoint(note)
    size = read.size
    with ExitStack() as stack:
        spark = None
        if where.engine == "spark":
            from raas.engine.spark_engine import spark_for_a_while

            spark = stack.enter_context(spark_for_a_while(where.spark_master))
        progress = stack.enter_context(_progress())
        # On DuckDB and Spark the bar counts the entries derived into the episode tables: only
        # the new part of the log once they exist.
        task = progress.add_task(f"settle {period.label} ({where.engine})", total=size)
        settlement = settle_on_engine(
            where.engine,
            ledger,
            versions,
            period,
            size=size,
            root=read.root,
            tables=where.tables,
            on_entries=lambda events: progress.advance(task, events),
            spark=spark,
        )
        progress.update(task, completed=size)
    ledger.store_invoice(settlement.invoice.id, tenant, invoice_json(settlement.invoice))
    return settlement, note


def _write_invoice(settlement: Settlement, out: Path) -> tuple[Path, Path]:
    invoice = settlement.invoice
    out.mkdir(parents=True, exist_ok=True)
    stem = invoice_file_stem(invoice)
    json_path = out / f"{stem}.json"
    html_path = out / f"{stem}.html"
    json_path.write_bytes(invoice_json(invoice))
    html_path.write_text(render_invoice_html(invoice), encoding="utf-8")
    return json_path, html_path


def _print_summary(settlement: Settlement, conversations_simulated: int | None) -> None:
    invoice, report = settlement.invoice, settlement.report
    currency = invoice.currency
    table = Table(
        title=f"{invoice.contract} v{invoice.contract_version}, {invoice.period}"
        f" ({invoice.time_zone})",
        show_header=True,
    )
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = []
    if conversations_simulated is not None:
        rows.append(("conversations simulated", f"{conversations_simulated:,}"))
    rows += [
        ("conversations final in period", f"{report.conversations:,}"),
        ("episodes final in period", f"{report.episodes:,}"),
        ("AI resolutions (billed)", f"{report.ai_resolutions:,}"),
        (
            "  confirmed / assumed",
            f"{report.confirmed_resolutions:,} / {report.assumed_resolutions:,}",
        ),
        ("handoffs (free)", f"{report.handoffs:,}"),
        ("  with context", f"{report.handoffs_with_context:,}"),
        ("recontacts inside window (not billed)", f"{report.recontacts_inside_window:,}"),
        ("recontacts after window (billed)", f"{report.recontacts_outside_window:,}"),
        ("unresolved", f"{report.unresolved:,}"),
        ("window still open at period end", f"{report.provisional:,}"),
        ("billed", f"{report.billed:,} {currency}"),
        ("model cost", f"{report.model_cost.quantize(_CENT):,} {currency}"),
        (
            "model cost per resolution",
            f"{report.model_cost_per_resolution} {currency}"
            if report.model_cost_per_resolution is not None
            else "-",
        ),
        ("margin", f"{report.margin.quantize(_CENT):,} {currency}"),
        ("ledger entries read", f"{invoice.ledger.size:,}"),
    ]
    if invoice.prepaid_balance is not None:
        rows.append(("prepaid credit before", f"{invoice.prepaid_balance_before:,} {currency}"))
        rows.append(("prepaid credit left", f"{invoice.prepaid_balance:,} {currency}"))
    if invoice.adjustments:
        adjusted = invoice.due - invoice.total
        rows.append((f"adjustments ({len(invoice.adjustments)} lines)", f"{adjusted:,} {currency}"))
        rows.append(("due", f"{invoice.due:,} {currency}"))
    for audit in invoice.audits:
        rows.append((f"audit sample of {audit.invoice}", f"{len(audit.episodes):,} episodes"))
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)


main.add_command(router)
main.add_command(gateway)
main.add_command(import_group)
main.add_command(db)
main.add_command(serve)
main.add_command(apikey)
main.add_command(dispute)

if __name__ == "__main__":
    sys.exit(main())
