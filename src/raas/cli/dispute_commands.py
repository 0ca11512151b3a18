"""`raas dispute file`, `raas dispute rule` and `raas dispute list`: the buyer contests an issued
invoice, a reviewer rules, both as events in the buyer's ledger (`raas.core.disputes`); the next
`raas settle` credits what was upheld."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape

from raas.cli.audit_commands import contract_option, existing_database
from raas.core.contract import load_contract
from raas.core.disputes import (
    Dispute,
    DisputeError,
    check_filing,
    check_ruling,
    dispute_event,
    disputes_of,
)
from raas.core.events import DisputeFiled, DisputeRuled
from raas.core.invoice import Invoice, invoice_from_json
from raas.engine.reference import dispute_events, issued_invoices
from raas.ledger import open_ledger

if TYPE_CHECKING:
    from raas.ledger import Ledger

SOURCE = "urn:raas:cli:disputes"

stdout = Console(soft_wrap=True, highlight=False)

_at = click.option(
    "--at",
    "at_text",
    help="When it happened, ISO 8601 with an offset (default: now). For importing a paper trail.",
)


@click.group()
def dispute() -> None:
    """Disputes of issued invoices: file, rule, list."""


@dispute.command("file")
@click.argument("invoice_id")
@click.option("--line", "lines", type=click.IntRange(min=0), multiple=True, help="A line (from 0).")
@click.option("--episode", "episodes", multiple=True, help="An episode billed on the invoice.")
@click.option("--reason", required=True, help="Why the buyer disputes it.")
@click.option("--by", "filed_by", required=True, help="Who files it.")
@click.option("--id", "dispute_id", help="The dispute's id (default: <invoice id>-d<n>).")
@contract_option
@_at
@existing_database
def file_dispute(
    invoice_id: str,
    lines: tuple[int, ...],
    episodes: tuple[str, ...],
    reason: str,
    filed_by: str,
    dispute_id: str | None,
    contract_path: Path,
    at_text: str | None,
    database: str,
) -> None:
    """File a dispute of lines or episodes of the issued invoice INVOICE_ID.

    Refused after the contract's deadline (`disputes.deadline` after the end of the invoice's
    period), or when it names a line or an episode the invoice does not hold."""
    if not lines and not episodes:
        raise click.UsageError("name at least one --line or --episode")
    contract = load_contract(contract_path)
    at = _moment(at_text)
    with open_ledger(database) as ledger:
        invoice = _invoice(ledger, contract.buyer, invoice_id)
        known = _disputes(ledger, contract_path, invoice.buyer)
        number = sum(1 for item in known if item.invoice_id == invoice.id) + 1
        data = DisputeFiled(
            dispute_id=dispute_id or f"{invoice.id}-d{number}",
            invoice_id=invoice.id,
            lines=tuple(sorted(set(lines))),
            episodes=tuple(sorted(set(episodes))),
            reason=reason,
            filed_by=filed_by,
        )
        check_filing(contract, invoice, data, at, known)
        event = dispute_event(
            data, id=f"filed:{data.dispute_id}", source=SOURCE, time=at, tenant=invoice.buyer
        )
        if ledger.append([event]).stored == 0:
            raise DisputeError(f"dispute {data.dispute_id!r} was already filed")
    stdout.print(f"filed dispute {escape(data.dispute_id)} of invoice {escape(invoice.id)}")


@dispute.command("rule")
@click.argument("dispute_id")
@click.option("--upheld/--rejected", required=True, help="The ruling.")
@click.option("--by", "ruled_by", required=True, help="Who rules.")
@click.option("--note", help="Why.")
@contract_option
@_at
@existing_database
def rule_dispute(
    dispute_id: str,
    upheld: bool,
    ruled_by: str,
    note: str | None,
    contract_path: Path,
    at_text: str | None,
    database: str,
) -> None:
    """Rule on the filed dispute DISPUTE_ID; an upheld one is credited on the next invoice."""
    contract = load_contract(contract_path)
    at = _moment(at_text)
    data = DisputeRuled(
        dispute_id=dispute_id,
        ruling="upheld" if upheld else "rejected",
        ruled_by=ruled_by,
        note=note,
    )
    with open_ledger(database) as ledger:
        filed = check_ruling(_disputes(ledger, contract_path, contract.buyer), data)
        if at < filed.filed_at:
            raise DisputeError(f"dispute {dispute_id!r}: a ruling cannot precede its filing")
        event = dispute_event(
            data, id=f"ruled:{dispute_id}", source=SOURCE, time=at, tenant=contract.buyer
        )
        if ledger.append([event]).stored == 0:
            raise DisputeError(f"dispute {dispute_id!r} was already ruled")
    stdout.print(f"dispute {escape(dispute_id)} {data.ruling}")


@dispute.command("list")
@contract_option
@existing_database
def list_disputes(contract_path: Path, database: str) -> None:
    """The disputes of the contract's issued invoices, with their rulings."""
    contract = load_contract(contract_path)
    with open_ledger(database) as ledger:
        found = _disputes(ledger, contract_path, contract.buyer)
    for item in found:
        named = [f"line {line}" for line in item.lines] + list(item.episodes)
        # Tab-separated and unstyled, for scripts.
        click.echo(
            f"{item.dispute_id}\t{item.invoice_id}\t{item.ruling or 'pending'}\t"
            f"{', '.join(named)}\t{item.reason}"
        )


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--at") from error
    if moment.utcoffset() is None:
        raise click.BadParameter(f"{text!r} has no UTC offset", param_hint="--at")
    return moment.astimezone(UTC)


def _invoice(ledger: Ledger, buyer: str, invoice_id: str) -> Invoice:
    body = ledger.get_invoice(buyer, invoice_id)
    if body is None:
        raise DisputeError(f"no invoice {invoice_id!r} was issued to buyer {buyer!r} in the ledger")
    return invoice_from_json(body)


def _disputes(ledger: Ledger, contract_path: Path, tenant: str) -> list[Dispute]:
    contract = load_contract(contract_path)
    invoices = {
        invoice.id: invoice
        for invoice in issued_invoices(ledger, tenant)
        if invoice.contract == contract.contract
    }
    return disputes_of(dispute_events(ledger, tenant, ledger.head(tenant)), contract, invoices)
