"""`raas keys generate`, `raas checkpoint` and `raas ledger check`: the log's signing keys, its
signed checkpoints, and the check that the stored ledger still agrees with itself.

`raas ledger check` exits 0 when everything agrees and 1 when it finds a problem (or cannot read
the ledger); the one line it prints names the tenant, log index, seq and what differs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import click
from rich.console import Console
from rich.markup import escape

from raas.cli.ledger_location import LedgerLocation
from raas.errors import StoreError
from raas.ledger import open_ledger
from raas.ledger.keys import (
    NoteKeyError,
    VerifierKey,
    generate,
    load_signer_key,
    load_verifier_keys,
    write_signer_key,
)

EXIT_OK: Final = 0
EXIT_PROBLEM: Final = 1
SIGNER_KEY_SUFFIX: Final = ".key"
VERIFIER_KEY_SUFFIX: Final = ".pub"

console = Console(stderr=True, soft_wrap=True, highlight=False)
stdout = Console(soft_wrap=True, highlight=False)

existing_database = click.option(
    "--db",
    "database",
    type=LedgerLocation(exists=True),
    default="raas.db",
    show_default=True,
    envvar="RAAS_DB",
    help="The ledger: a SQLite file, or postgresql://user@host:port/database.",
)


@click.group()
def keys() -> None:
    """Signing keys for the ledger's checkpoints."""


@keys.command("generate")
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for NAME.key (secret, mode 0600) and NAME.pub (the verifier key to hand out).",
)
def generate_keys(name: str, out: Path) -> None:
    """Generate an Ed25519 key pair NAME for signing checkpoints.

    Give NAME.pub to buyers and auditors; keep NAME.key to yourself. To rotate, generate a new
    pair and sign with both (`raas checkpoint --key OLD.key --key NEW.key`) until everyone pins
    the new verifier key.
    """
    signer_text, verifier_text = generate(name)
    out.mkdir(parents=True, exist_ok=True)
    signer_path = out / f"{name}{SIGNER_KEY_SUFFIX}"
    verifier_path = out / f"{name}{VERIFIER_KEY_SUFFIX}"
    if verifier_path.exists():
        raise NoteKeyError(f"{verifier_path} already exists; refusing to overwrite a key")
    write_signer_key(signer_path, signer_text)
    try:
        with open(verifier_path, "x", encoding="utf-8") as file:
            file.write(verifier_text + "\n")
    except OSError as error:
        os.unlink(signer_path)
        raise NoteKeyError(f"cannot write {verifier_path}: {error.strerror}") from error
    stdout.print(f"signer key:   {escape(str(signer_path))} (secret)")
    stdout.print(f"verifier key: {escape(str(verifier_path))}")
    stdout.print(escape(verifier_text))


@click.command()
@existing_database
@click.option(
    "--key",
    "key_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signer key file (repeat to sign with several keys while rotating).",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Sign this tenant's log only (repeatable; default: every tenant).",
)
def checkpoint(database: str, key_paths: tuple[Path, ...], tenants: tuple[str, ...]) -> None:
    """Sign the current head of each tenant's log and print the signed notes.

    A checkpoint is signed only if it extends the last one signed for that log.
    """
    signers = [load_signer_key(path) for path in key_paths]
    with open_ledger(database) as ledger:
        for tenant in tenants or tuple(ledger.tenants()):
            note = ledger.sign_checkpoint(tenant, signers)
            stdout.print(escape(note), end="")


@click.group()
def ledger() -> None:
    """Inspect the embedded ledger."""


@ledger.command("check")
@existing_database
@click.option(
    "--key",
    "key_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verifier key file(s) (NAME.pub): also verify every checkpoint's signature.",
)
def check(database: str, key_paths: tuple[Path, ...]) -> None:
    """Re-hash every entry, check every disclosure, recompute each tenant's tree and compare it
    with the stored frontier and every stored checkpoint; report the first disagreement.

    Exit status 0: all is well; 1: something disagrees (or the ledger cannot be read).
    """
    verifiers: list[VerifierKey] = [key for path in key_paths for key in load_verifier_keys(path)]
    if key_paths and not verifiers:
        raise NoteKeyError(f"no verifier key in {', '.join(str(path) for path in key_paths)}")
    try:
        with open_ledger(database) as opened:
            found = opened.check(verifiers)
    except StoreError as error:
        console.print(f"ledger check failed: {escape(str(error))}")
        sys.exit(EXIT_PROBLEM)
    summary = (
        f"{found.tenants:,} logs, {found.entries:,} entries, {found.checkpoints:,} checkpoints"
        + (f" ({found.signatures_verified:,} signatures verified)" if verifiers else "")
    )
    if found.problem is not None:
        stdout.print(f"FAILED: {escape(str(found.problem))}")
        console.print(f"read before the problem: {summary}")
        sys.exit(EXIT_PROBLEM)
    stdout.print(f"ok: {summary}")
