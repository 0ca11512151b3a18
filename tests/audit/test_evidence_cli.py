"""End to end through the command line, as a vendor and an auditor run it: settle a simulated month
into a SQLite ledger, `raas evidence export` / `receipt` / `consistency`, then `raas verify` with
only the files and the public key. What would break: a bundle the auditor's command does not
accept, a lie it does not catch, or exit codes that do not tell verified (0) from does not verify
(1) from unusable input (2)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from factories import NOVEMBER, conversation
from raas.core.contract import load_contract
from raas.core.events import Event
from raas.core.invoice import invoice_from_json, invoice_json
from raas.core.periods import month_period
from raas.engine.reference import settle_from_ledger
from raas.ledger.keys import SignerKey, generate, load_signer_key
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
RAAS = [sys.executable, "-m", "raas.cli.main"]
NOVEMBER_PERIOD = month_period("Europe/Berlin", 2026, 11)
INVOICE_ID = "acme-support-v1-2026-11"
DECEMBER = conversation("c-december", customer="u-december", start=NOVEMBER + timedelta(days=32))


def raas(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAAS, *map(str, arguments)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def simulated_events() -> list[Event]:
    simulation = Simulation(SimConfig(seed=21, conversations=30))
    return [event for batch in simulation.batches() for event in batch]


def settled_ledger(path: Path, signer: SignerKey, events: list[Event]) -> tuple[int, bytes]:
    """What `raas simulate` and `raas settle --key` do, in Python: append, sign a checkpoint,
    settle November at its size, store the invoice."""
    with SqliteLedger(path) as ledger:
        ledger.append(events)
        ledger.sign_checkpoint("acme", signer)
        size = ledger.head("acme")
        invoice = settle_from_ledger(
            ledger, load_contract(CONTRACT), NOVEMBER_PERIOD, size=size
        ).invoice
        body = invoice_json(invoice)
        ledger.store_invoice(invoice.id, "acme", body)
        return size, body


@dataclass(frozen=True)
class Setup:
    folder: Path
    database: Path
    public_key: Path
    signer: SignerKey
    size: int
    invoice: bytes
    bundle: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The vendor's side, all through the command line: a key, a simulated month, an invoice
    settled at a signed checkpoint, its evidence bundle."""
    folder = tmp_path_factory.mktemp("evidence-cli")
    database = folder / "ledger.db"
    for arguments in (
        ("keys", "generate", "helpdesk-ai-log", "--out", folder),
        ("simulate", "--conversations", "30", "--seed", "21", "--db", database),
        ("settle", "--contract", CONTRACT, "--period", "2026-11", "--db", database,
         "--out", folder, "--key", folder / "helpdesk-ai-log.key"),
    ):  # fmt: skip
        result = raas(*arguments, cwd=folder)
        assert result.returncode == 0, result.stdout + result.stderr
    public_key = folder / "helpdesk-ai-log.pub"
    signer = load_signer_key(folder / "helpdesk-ai-log.key")
    invoice = (folder / f"invoice-acme_{INVOICE_ID}.json").read_bytes()
    with SqliteLedger(database) as ledger:
        size = ledger.head("acme")
        assert ledger.get_invoice("acme", INVOICE_ID) == invoice
    bundle = folder / "bundle.json"
    result = raas(
        "evidence", "export", INVOICE_ID, "--db", database, "--contract", CONTRACT,
        "--out", bundle, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {bundle}" in result.stdout
    return Setup(folder, database, public_key, signer, size, invoice, bundle)


def test_an_exported_bundle_verifies_with_only_the_public_key(setup: Setup) -> None:
    result = raas("verify", setup.bundle, "--key", setup.public_key, cwd=setup.folder)
    assert result.returncode == 0, result.stdout + result.stderr
    invoice = invoice_from_json(setup.invoice)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"verified: invoice {INVOICE_ID} (acme-support v1, period 2026-11")
    assert f"  checkpoint  raas/raas/acme at size {setup.size:,}, root " in result.stdout
    for number, line in enumerate(invoice.lines, start=1):
        assert (
            f"  line {number}      {line.outcome}: {line.quantity:,} x {line.unit_price} = "
            f"{line.amount} USD"
        ) in lines
    assert f"  total       {invoice.total} USD" in lines
    assert invoice.total > Decimal(0)


def test_the_report_is_available_as_json(setup: Setup) -> None:
    result = raas(
        "verify", setup.bundle, "--key", setup.public_key, "--json",
        "--origin", "raas/raas/acme", "--contract", CONTRACT, cwd=setup.folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == [] and report["rederived"] is True
    assert report["entries_checked"] == report["proofs_checked"] > 100
    assert report["disclosures_checked"] > 0
    assert Decimal(report["total"]) == invoice_from_json(setup.invoice).total


def test_a_redacted_and_a_complete_bundle_verify(setup: Setup) -> None:
    redacted = setup.folder / "redacted.json"
    complete = setup.folder / "complete.json"
    for out, flag in ((redacted, "--redact"), (complete, "--complete")):
        result = raas(
            "evidence", "export", INVOICE_ID, "--db", setup.database, "--contract", CONTRACT,
            "--out", out, flag, cwd=setup.folder,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        check = raas("verify", out, "--key", setup.public_key, cwd=setup.folder)
        assert check.returncode == 0, check.stdout + check.stderr
    redacted_entries = json.loads(redacted.read_bytes())["entries"]
    assert all("disclosures" not in item for item in redacted_entries)
    assert len(json.loads(complete.read_bytes())["entries"]) == setup.size
    for out, status in ((complete, 0), (setup.bundle, 1)):
        required = raas("verify", out, "--key", setup.public_key, "--complete", cwd=setup.folder)
        assert required.returncode == status, required.stdout
    # Same inputs, same bytes.
    again = setup.folder / "again.json"
    raas(
        "evidence", "export", INVOICE_ID, "--db", setup.database, "--contract", CONTRACT,
        "--out", again, cwd=setup.folder,
    )  # fmt: skip
    assert again.read_bytes() == setup.bundle.read_bytes()


def test_the_invoice_names_the_root_of_its_checkpoint(setup: Setup) -> None:
    plain = json.loads(setup.bundle.read_bytes())
    invoice = invoice_from_json(plain["invoice"].encode())
    with SqliteLedger(setup.database) as ledger:
        root = ledger.root("acme", setup.size)
    assert invoice.ledger.root == base64.b64encode(root).decode()
    assert invoice.ledger.root in plain["checkpoint"].splitlines()[2]
    for root_named, verified in ((None, True), (base64.b64encode(bytes(32)).decode(), False)):
        # None: an invoice issued before roots were recorded still reads and verifies by size.
        pinned = msgspec.structs.replace(
            invoice, ledger=msgspec.structs.replace(invoice.ledger, root=root_named)
        )
        plain["invoice"] = invoice_json(pinned).decode()
        edited = setup.folder / "root-edited.json"
        edited.write_text(json.dumps(plain), encoding="utf-8")
        result = raas("verify", edited, "--key", setup.public_key, cwd=setup.folder)
        assert (result.returncode == 0) is verified, result.stdout
        if not verified:
            assert "invoice ledger point" in result.stdout


def test_an_edited_invoice_exits_1_naming_the_line(setup: Setup) -> None:
    plain = json.loads(setup.bundle.read_bytes())
    invoice = invoice_from_json(plain["invoice"].encode())
    first = invoice.lines[0]
    edited = msgspec.structs.replace(first, amount=first.amount + Decimal("1.00"))
    plain["invoice"] = invoice_json(
        msgspec.structs.replace(invoice, lines=(edited, *invoice.lines[1:]))
    ).decode()
    tampered = setup.folder / "tampered.json"
    tampered.write_text(json.dumps(plain), encoding="utf-8")
    result = raas("verify", tampered, "--key", setup.public_key, cwd=setup.folder)
    assert result.returncode == 1
    assert (
        f"  line 1 ({first.outcome}): amount: expected {first.amount}, found {edited.amount}"
    ) in result.stdout.splitlines()


def test_exit_codes_tell_failure_from_unusable_input(setup: Setup) -> None:
    folder = setup.folder
    data = setup.bundle.read_bytes()
    other_key = folder / "other.pub"
    other_key.write_text(generate("helpdesk-ai-log")[1] + "\n", encoding="utf-8")
    truncated = folder / "truncated.json"
    truncated.write_bytes(data[: len(data) // 2])
    not_json = folder / "note.txt"
    not_json.write_bytes(b"\xff\xfe not evidence")
    garbage_key = folder / "garbage.pub"
    garbage_key.write_text("not a key\n", encoding="utf-8")

    wrong_key = raas("verify", setup.bundle, "--key", other_key, cwd=folder)
    assert wrong_key.returncode == 1
    assert "checkpoint: no signature by a known key" in wrong_key.stdout
    for arguments, message in [
        ((truncated, "--key", setup.public_key), "not an evidence bundle"),
        ((not_json, "--key", setup.public_key), "not an evidence bundle"),
        ((folder / "missing.json", "--key", setup.public_key), "cannot read"),
        ((setup.bundle, "--key", garbage_key), "verifier key"),
        ((setup.bundle, setup.bundle, "--key", setup.public_key), "give one bundle"),
    ]:
        result = raas("verify", *arguments, cwd=folder)
        assert result.returncode == 2, (arguments, result.stdout, result.stderr)
        assert "raas verify: unusable input:" in result.stderr and message in result.stderr
        assert "Traceback" not in result.stderr


def test_a_line_receipt_verifies(setup: Setup) -> None:
    receipt = setup.folder / "line-1.receipt.json"
    result = raas(
        "evidence", "receipt", INVOICE_ID, "--line", "1", "--db", setup.database,
        "--contract", CONTRACT, "--out", receipt, cwd=setup.folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    check = raas("verify", receipt, "--key", setup.public_key, cwd=setup.folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("verified: receipt for line 1 (ai_resolution) of invoice")
    usage = raas(
        "evidence", "receipt", INVOICE_ID, "--db", setup.database, "--contract", CONTRACT,
        "--out", receipt, cwd=setup.folder,
    )  # fmt: skip
    assert usage.returncode == 2 and "give --line or --episode" in usage.stderr
    contract = raas(
        "verify", receipt, "--key", setup.public_key, "--contract", CONTRACT, cwd=setup.folder
    )
    assert (
        contract.returncode == 2 and "--contract applies to an evidence bundle" in contract.stderr
    )


def test_a_grown_log_is_consistent_and_a_rewritten_one_is_not(setup: Setup) -> None:
    folder = setup.folder
    grown = folder / "grown.db"
    grown.write_bytes(setup.database.read_bytes())
    with SqliteLedger(grown) as ledger:
        ledger.append(DECEMBER)
    signed = raas(
        "checkpoint", "--db", grown, "--key", folder / "helpdesk-ai-log.key", "--tenant", "acme",
        cwd=folder,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    proof = folder / "grown.consistency.json"
    result = raas(
        "evidence", "consistency", "--db", grown, "--tenant", "acme",
        "--old-size", str(setup.size), "--out", proof, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for old in ([setup.bundle], []):  # the auditor's old bundle, or the file's own old note
        check = raas("verify", "--consistency", *old, proof, "--key", setup.public_key, cwd=folder)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.startswith("verified: the log raas/raas/acme at size")

    # The vendor rewrites history: one November event changed, the rest appended again.
    events = simulated_events()
    events[3] = msgspec.structs.replace(events[3], id=events[3].id + "-rewritten")
    rewritten = folder / "rewritten.db"
    settled_ledger(rewritten, setup.signer, events)
    with SqliteLedger(rewritten) as ledger:
        ledger.append(DECEMBER)
        ledger.sign_checkpoint("acme", setup.signer)
    forged = folder / "rewritten.consistency.json"
    result = raas(
        "evidence", "consistency", "--db", rewritten, "--tenant", "acme",
        "--old-size", str(setup.size), "--out", forged, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    alone = raas("verify", "--consistency", forged, "--key", setup.public_key, cwd=folder)
    assert alone.returncode == 0  # consistent with its own rewritten past...
    check = raas(
        "verify", "--consistency", setup.bundle, forged, "--key", setup.public_key, cwd=folder
    )
    assert check.returncode == 1  # ...not with the checkpoint the auditor's bundle holds
    assert "the log was rewritten (forked)" in check.stdout
