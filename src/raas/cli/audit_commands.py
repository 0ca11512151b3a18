"""`raas evidence ...` (export evidence from the ledger) and `raas verify ...` (check it offline,
with no database and no server). Thin: parse options, call the library, render the result.

`raas verify` exits 0 when everything verified, 1 when the evidence was read and something does
not verify (each finding says where and why), and 2 when the input is unusable: a file that is not
evidence, a key file that is not a key, or wrong usage.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn, TypeVar

import click
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from raas.audit.bundle import BUNDLE_FORMAT, BundleError, decode_bundle, encode_bundle, file_format
from raas.audit.consistency import (
    CONSISTENCY_FORMAT,
    decode_consistency,
    encode_consistency,
)
from raas.audit.receipt import RECEIPT_FORMAT, decode_receipt, encode_receipt
from raas.audit.verify import (
    BundleReport,
    ConsistencyReport,
    Findings,
    ReceiptReport,
    verify_bundle,
    verify_consistency_proof,
    verify_receipt,
)
from raas.cli.ledger_location import LedgerLocation
from raas.errors import RaasError
from raas.ledger.checkpoint import stated_checkpoint
from raas.ledger.keys import VerifierKey, load_verifier_keys

if TYPE_CHECKING:
    from raas.ledger import Ledger

_T = TypeVar("_T")

EXIT_VERIFIED: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNUSABLE: Final = 2
# Evidence files are read whole; this many bytes at most (a bundle's own cap is checked again).
EVIDENCE_FILE_BYTES_MAX: Final = 2**31

console = Console(stderr=True, soft_wrap=True, highlight=False)
stdout = Console(soft_wrap=True, highlight=False)

existing_database = click.option(
    "--db",
    "database",
    type=LedgerLocation(exists=True),
    default="raas.db",
    show_default=True,
    envvar="RAAS_DB",
    help="The ledger the invoice was settled from: a SQLite file or a postgresql:// URL.",
)
contract_option = click.option(
    "--contract",
    "contract_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The contract version the invoice was settled under (YAML).",
)


def contract_versions_option(
    help_text: str,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`--contract`, repeated for each version of a contract (`contract_paths`)."""
    return click.option(
        "--contract",
        "contract_paths",
        required=True,
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


def _out_option(help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=help_text
    )


@contextmanager
def _ledger(database: str) -> Iterator[Ledger]:
    # `raas verify` never loads a database driver: open_ledger imports one when called.
    from raas.ledger import open_ledger

    with open_ledger(database) as ledger:
        yield ledger


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all; the file is readable as the umask allows
    (evidence is for sharing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# -- raas evidence ------------------------------------------------------------------------------


@click.group()
def evidence() -> None:
    """Export evidence an auditor checks offline with `raas verify`."""


@evidence.command("export")
@click.argument("invoice_id")
@existing_database
@contract_versions_option(
    "The contract version the invoice was settled under (YAML); repeat it for every "
    "version when versions split its period, it adjusts periods of other versions, or the "
    "run of its minimum commitment or its prepaid credit began under another version."
)
@_out_option("The bundle file to write (JSON).")
@click.option(
    "--redact",
    is_flag=True,
    help="Leave out personal data (message text, review notes); every proof still verifies.",
)
@click.option(
    "--complete",
    is_flag=True,
    help="Every entry of the log up to the invoice's checkpoint, not only the invoice's "
    "customers: lets the auditor check what was not billed, and notice a missing entry.",
)
def export(
    invoice_id: str,
    database: str,
    contract_paths: tuple[Path, ...],
    out: Path,
    redact: bool,
    complete: bool,
) -> None:
    """Write the evidence bundle of an issued invoice: contract, signed checkpoint, invoice, and
    every entry behind its lines with its inclusion proof.

    Example: raas evidence export acme-support-v1-2026-11 --db raas.db
    --contract acme-support.yaml --out acme-2026-11.bundle.json --redact
    """
    from raas.ledger.evidence import export_bundle

    texts = [_read_text(path) for path in contract_paths]
    with _ledger(database) as ledger, _entries_progress("export evidence") as advance:
        contract_text, versions = _invoice_version_first(ledger, invoice_id, texts)
        bundle = export_bundle(
            ledger,
            invoice_id,
            contract_text,
            redact=redact,
            scope="log" if complete else "customers",
            on_customer=advance,
            versions=versions,
        )
    _write_atomically(out, encode_bundle(bundle))
    disclosed = sum(1 for item in bundle.entries if item.disclosures is not None)
    stdout.print(
        f"wrote {escape(str(out))}: {len(bundle.entries):,} entries with inclusion proofs "
        f"({'the whole log' if complete else 'the invoice customers'}), "
        f"{'redacted' if redact else f'{disclosed:,} with disclosures'}"
    )


def _invoice_version_first(
    ledger: Ledger, invoice_id: str, texts: Sequence[str]
) -> tuple[str, list[str]]:
    """The text of the version the invoice names, and the others (the first given when none
    or the invoice is unknown: the export then says what is wrong). The invoice is the one
    issued to the contracts' buyer (the first given names it)."""
    from raas.core.contract import parse_contract
    from raas.core.invoice import invoice_from_json

    if len(texts) < 2:
        return texts[0], []
    contracts = [parse_contract(text, "a contract") for text in texts]
    body = ledger.get_invoice(contracts[0].buyer, invoice_id)
    chosen = 0
    if body is not None:
        wanted = invoice_from_json(body).contract_version
        numbers = [contract.version for contract in contracts]
        chosen = numbers.index(wanted) if wanted in numbers else 0
    return texts[chosen], [text for index, text in enumerate(texts) if index != chosen]


@evidence.command("receipt")
@click.argument("invoice_id")
@existing_database
@contract_option
@click.option("--line", type=click.IntRange(min=1), help="The invoice line, numbered from 1.")
@click.option("--episode", help="An episode id (conversation#intent).")
@_out_option("The receipt file to write (JSON of C2SP tlog-proofs).")
def receipt(
    invoice_id: str,
    database: str,
    contract_path: Path,
    line: int | None,
    episode: str | None,
    out: Path,
) -> None:
    """Write a receipt for one invoice line or one episode: each of its entries with its inclusion
    proof under the invoice's checkpoint, as C2SP tlog-proofs.

    Example: raas evidence receipt acme-support-v1-2026-11 --line 1 --db raas.db
    --contract acme-support.yaml --out line-1.receipt.json
    """
    from raas.ledger.evidence import export_receipt

    if (line is None) == (episode is None):
        raise click.UsageError("give --line or --episode (one of them)")
    with _ledger(database) as ledger:
        made = export_receipt(
            ledger,
            invoice_id,
            _read_text(contract_path),
            line=line,
            episode=episode,
        )
    _write_atomically(out, encode_receipt(made))
    stdout.print(
        f"wrote {escape(str(out))}: {_count(len(made.proofs), 'entry', 'entries')} of "
        f"{_count(len(made.episodes), 'episode')}, each with its inclusion proof"
    )


@evidence.command("consistency")
@existing_database
@click.option("--tenant", required=True, help="The buyer whose log it is.")
@click.option("--old-size", required=True, type=click.IntRange(min=0))
@click.option(
    "--new-size",
    type=click.IntRange(min=0),
    help="Default: the size of the log's latest signed checkpoint.",
)
@_out_option("The consistency proof file to write (JSON).")
def consistency(database: str, tenant: str, old_size: int, new_size: int | None, out: Path) -> None:
    """Write both signed checkpoints and the proof that the log at the newer one extends the log
    at the older one (append-only). Both sizes must have been checkpointed.

    Example: raas evidence consistency --db raas.db --tenant acme --old-size 1200
    --out acme-1200.consistency.json
    """
    from raas.ledger.evidence import export_consistency

    with _ledger(database) as ledger:
        if new_size is None:
            latest = ledger.latest_checkpoint(tenant)
            if latest is None:
                raise click.ClickException(f"the log of {tenant!r} has no signed checkpoint")
            new_size = stated_checkpoint(latest).size
        item = export_consistency(ledger, tenant, old_size, new_size)
    _write_atomically(out, encode_consistency(item))
    stdout.print(
        f"wrote {escape(str(out))}: log of {tenant} from size {old_size:,} to {new_size:,}, "
        f"{len(item.proof)} proof hashes"
    )


# -- raas verify --------------------------------------------------------------------------------


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="The log's verifier key file (note key format), pinned; repeat while keys rotate.",
)
@click.option(
    "--consistency",
    "check_consistency",
    is_flag=True,
    help="FILES are OLD NEW: prove the log at NEW extends the log at OLD (append-only).",
)
@click.option("--origin", help="The log the checkpoint must be for, e.g. helpdesk-ai/raas/acme.")
@click.option(
    "--contract",
    "contract_path",
    type=click.Path(path_type=Path),
    help="Your own copy of the contract: the bundle's must state the same terms.",
)
@click.option(
    "--complete",
    "require_complete",
    is_flag=True,
    help="Accept only a bundle of the whole log (exported with --complete).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    files: tuple[Path, ...],
    key_paths: tuple[Path, ...],
    check_consistency: bool,
    origin: str | None,
    contract_path: Path | None,
    require_complete: bool,
    as_json: bool,
) -> None:
    """Check evidence offline against the log's public key; no database, no server.

    \b
    raas verify BUNDLE --key log.pub          an evidence bundle: signature, every
                                              inclusion proof, the invoice re-derived
    raas verify RECEIPT --key log.pub         a receipt for one line or episode
    raas verify --consistency OLD NEW --key log.pub
        OLD: a checkpoint note, bundle, receipt or consistency file (its older checkpoint);
        NEW: a consistency file (`raas evidence consistency`); or just one consistency file.

    Exit status: 0 verified, 1 does not verify (what and why is printed), 2 unusable input.
    """
    keys = _load_keys(key_paths)
    if contract_path is not None and (
        check_consistency or len(files) != 1 or file_format(_read_bytes(files[0])) != BUNDLE_FORMAT
    ):
        _unusable("--contract applies to an evidence bundle only")
    if check_consistency:
        report: Findings = _verify_consistency(files, keys, origin)
    else:
        if len(files) != 1:
            _unusable("give one bundle or receipt (or --consistency OLD NEW)")
        data = _read_bytes(files[0])
        kind = file_format(data)
        contract_text = None if contract_path is None else _read_text(contract_path, unusable=True)
        if kind == BUNDLE_FORMAT:
            bundle = _decoded(files[0], lambda: decode_bundle(data))
            report = verify_bundle(
                bundle,
                keys,
                origin=origin,
                contract_text=contract_text,
                require_complete=require_complete,
            )
        elif kind == RECEIPT_FORMAT:
            made = _decoded(files[0], lambda: decode_receipt(data))
            report = verify_receipt(made, keys, origin=origin)
        elif kind == CONSISTENCY_FORMAT:
            _unusable(f"{files[0]} is a consistency proof: check it with --consistency")
        else:
            _decoded(files[0], lambda: decode_bundle(data))  # says why it is not a bundle
            _unusable(f"{files[0]} is not an evidence bundle or a receipt")
    if as_json:
        stdout.out(msgspec.json.encode(report).decode("utf-8"))
    else:
        _render(report)
    raise SystemExit(EXIT_VERIFIED if _ok(report) else EXIT_FAILED)


def _ok(report: Findings) -> bool:
    assert isinstance(report, BundleReport | ReceiptReport | ConsistencyReport)
    return report.ok


def _verify_consistency(
    files: Sequence[Path], keys: Sequence[VerifierKey], origin: str | None
) -> ConsistencyReport:
    if len(files) not in (1, 2):
        _unusable("--consistency takes OLD NEW, or one consistency proof file")
    newer = files[-1]
    data = _read_bytes(newer)
    if file_format(data) != CONSISTENCY_FORMAT:
        _unusable(
            f"{newer} is not a consistency proof file (`raas evidence consistency` writes one)"
        )
    item = _decoded(newer, lambda: decode_consistency(data))
    old_note = item.old if len(files) == 1 else _checkpoint_of(files[0])
    return verify_consistency_proof(
        old_note, item.new, item.proof, keys, origin=origin, proof_old_note=item.old
    )


def _checkpoint_of(path: Path) -> str:
    """The (older) checkpoint note held by a note, bundle, receipt or consistency file."""
    data = _read_bytes(path)
    kind = file_format(data)
    if kind == BUNDLE_FORMAT:
        return _decoded(path, lambda: decode_bundle(data)).checkpoint
    if kind == RECEIPT_FORMAT:
        proofs = _decoded(path, lambda: decode_receipt(data)).proofs
        if not proofs:
            _unusable(f"{path}: the receipt holds no checkpoint")
        return proofs[0].checkpoint
    if kind == CONSISTENCY_FORMAT:
        return _decoded(path, lambda: decode_consistency(data)).old
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _unusable(f"{path} is not a checkpoint note, bundle, receipt or consistency file")


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def _render(report: Findings) -> None:
    if isinstance(report, BundleReport):
        _render_bundle(report)
    elif isinstance(report, ReceiptReport):
        _render_receipt(report)
    else:
        assert isinstance(report, ConsistencyReport)
        _render_consistency(report)
    if report.findings_total:
        stdout.print(f"FAILED: {report.findings_total:,} findings")
        for line in report.lines():
            stdout.print(f"  {escape(line)}")


def _render_bundle(report: BundleReport) -> None:
    head = "verified" if report.ok else "does not verify"
    stdout.print(
        f"{head}: invoice {escape(report.invoice_id or '?')} ({escape(report.contract or '?')}, "
        f"period {report.period}, as of {report.as_of.isoformat() if report.as_of else '?'})"
    )
    if report.size is not None:
        stdout.print(
            f"  checkpoint  {escape(report.origin or '')} at size {report.size:,}, "
            f"root {report.root.hex() if report.root else '?'}"
        )
    stdout.print(
        f"  evidence    {report.entries_checked:,} entries, {report.proofs_checked:,} inclusion "
        f"proofs, {report.disclosures_checked:,} disclosures checked "
        f"({'the whole log' if report.scope == 'log' else 'the invoice customers'})"
    )
    if not report.rederived:
        if report.findings_total:
            stdout.print("  not re-derived: the evidence above does not verify")
        return
    stdout.print(f"  re-derived  {report.episodes:,} episodes of {report.customers:,} customers")
    for number, line in enumerate(report.line_totals, start=1):
        stdout.print(
            f"  line {number}      {line.outcome}: {line.quantity:,} x {line.unit_price} = "
            f"{line.amount} {report.currency}"
        )
    stdout.print(f"  total       {report.total} {report.currency}")
    if not report.adjustments_checked:
        stdout.print(
            "  adjustments and audits of earlier invoices are taken as stated here: they need "
            "every customer (export with --complete to check them)"
        )
    if not report.counts_checked:
        stdout.print(
            "  not_billed and provisional are lower bounds here: they count customers outside "
            "this bundle (export with --complete to check them)"
        )


def _render_receipt(report: ReceiptReport) -> None:
    head = "verified" if report.ok else "does not verify"
    what = f"line {report.line} ({report.outcome})" if report.line else "an episode"
    stdout.print(
        f"{head}: receipt for {what} of invoice {escape(report.invoice_id or '?')}, "
        f"{_count(len(report.episodes), 'episode')}"
    )
    if report.size is not None:
        stdout.print(
            f"  {report.proofs_checked:,} entries included in {escape(report.origin or '')} "
            f"at size {report.size:,}, root {report.root.hex() if report.root else '?'}"
        )


def _render_consistency(report: ConsistencyReport) -> None:
    if report.ok:
        stdout.print(
            f"verified: the log {escape(report.origin or '')} at size {report.new_size:,} "
            f"extends its checkpoint at size {report.old_size:,} (append-only)"
        )
    else:
        stdout.print("does not verify: consistency between the two checkpoints")


# -- input --------------------------------------------------------------------------------------


def _unusable(message: str) -> NoReturn:
    console.print(f"raas verify: unusable input: {escape(message)}")
    raise SystemExit(EXIT_UNUSABLE)


def _decoded(path: Path, decode: Callable[[], _T]) -> _T:
    try:
        return decode()
    except BundleError as error:
        _unusable(f"{path}: {error}")


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > EVIDENCE_FILE_BYTES_MAX:
            _unusable(f"{path} has {size:,} bytes, more than {EVIDENCE_FILE_BYTES_MAX:,}")
        return path.read_bytes()
    except OSError as error:
        _unusable(f"cannot read {path}: {error.strerror}")


def _read_text(path: Path, *, unusable: bool = False) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        if unusable:
            _unusable(f"cannot read {path} as UTF-8 text: {error}")
        raise click.ClickException(f"cannot read {path} as UTF-8 text: {error}") from error


def _load_keys(paths: Sequence[Path]) -> list[VerifierKey]:
    keys: list[VerifierKey] = []
    for path in paths:
        try:
            loaded = load_verifier_keys(path)
        except RaasError as error:
            _unusable(str(error))
        if not loaded:
            _unusable(f"{path} holds no verifier key")
        keys.extend(loaded)
    return keys


@contextmanager
def _entries_progress(description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar counting entries read, on stderr."""
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)
        yield lambda entries: progress.advance(task, entries)
