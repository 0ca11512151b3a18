"""`raas keys generate`, `raas checkpoint` and `raas ledger check` from the command line.

What would break: a secret key file others can read, a key overwritten, a checkpoint note that
the generated verifier key does not open, `raas ledger check` passing a tampered ledger or
failing a sound one (exit status 0 must mean sound), or a problem reported without its place.
"""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from raas.cli.main import main
from raas.core.events import Csat, Message, make_event
from raas.ledger import SqliteLedger
from raas.ledger.checkpoint import open_checkpoint
from raas.ledger.keys import load_signer_key, load_verifier_keys

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def run(*arguments: object) -> Result:
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, vendor="helpdesk-ai") as ledger:
        ledger.append(
            [
                make_event(
                    Message(role="ai", text=f"answer {n}") if n % 2 else Csat(score=3),
                    id=f"event-{n}",
                    source="urn:raas:test",
                    time=START + timedelta(minutes=n),
                    tenant="acme" if n % 3 else "globex",
                    customer=f"customer-{n % 4}",
                    conversation=f"conversation-{n // 4}",
                )
                for n in range(30)
            ]
        )
    return path


@pytest.fixture
def key_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    result = run("keys", "generate", "helpdesk-ai-log", "--out", folder)
    assert result.exit_code == 0, result.output
    return folder


def test_keys_generate_writes_a_private_signer_and_a_verifier(key_folder: Path) -> None:
    signer_path = key_folder / "helpdesk-ai-log.key"
    verifier_path = key_folder / "helpdesk-ai-log.pub"
    assert stat.S_IMODE(signer_path.stat().st_mode) == 0o600
    signer = load_signer_key(signer_path)
    assert load_verifier_keys(verifier_path) == [signer.verifier()]

    again = run("keys", "generate", "helpdesk-ai-log", "--out", key_folder)
    assert again.exit_code == 1 and "already exists" in again.output
    assert load_signer_key(signer_path).key_id == signer.key_id


def test_checkpoint_signs_every_tenants_log(database: Path, key_folder: Path) -> None:
    result = run("checkpoint", "--db", database, "--key", key_folder / "helpdesk-ai-log.key")

    assert result.exit_code == 0, result.output
    verifiers = load_verifier_keys(key_folder / "helpdesk-ai-log.pub")
    notes = ["helpdesk-ai/raas" + part for part in result.output.split("helpdesk-ai/raas")[1:]]
    opened = [open_checkpoint(note, verifiers) for note in notes]
    assert [(item.origin, item.size) for item in opened] == [
        ("helpdesk-ai/raas/acme", 20),
        ("helpdesk-ai/raas/globex", 10),
    ]
    with SqliteLedger(database) as ledger:
        assert opened[0].root == ledger.root("acme")
        assert ledger.latest_checkpoint("acme") == notes[0]

    only = run(
        "checkpoint", "--db", database, "--key", key_folder / "helpdesk-ai-log.key",
        "--tenant", "globex",
    )  # fmt: skip
    assert only.exit_code == 0 and only.output.count("— helpdesk-ai-log ") == 1


def test_ledger_check_passes_a_sound_ledger(database: Path, key_folder: Path) -> None:
    assert (
        run("checkpoint", "--db", database, "--key", key_folder / "helpdesk-ai-log.key").exit_code
        == 0
    )

    plain = run("ledger", "check", "--db", database)
    keyed = run("ledger", "check", "--db", database, "--key", key_folder / "helpdesk-ai-log.pub")

    assert plain.exit_code == 0 and plain.output.startswith("ok: 2 logs, 30 entries, 2 checkpoints")
    assert keyed.exit_code == 0 and "(2 signatures verified)" in keyed.output


def test_ledger_check_names_the_first_entry_that_disagrees(database: Path) -> None:
    connection = sqlite3.connect(database)
    position = (1 << 40) + 4  # globex's fifth entry (globex is the first tenant in the batch)
    entry = connection.execute(
        "SELECT entry FROM events WHERE position = ?", (position,)
    ).fetchone()
    seq = connection.execute("SELECT seq FROM events WHERE position = ?", (position,)).fetchone()
    connection.execute(
        "UPDATE events SET entry = ? WHERE position = ?",
        (entry[0].replace(b"customer-", b"customer_"), position),
    )
    connection.commit()
    connection.close()

    result = run("ledger", "check", "--db", database)

    assert result.exit_code == 1
    assert (
        f"FAILED: tenant 'globex', log index 4, seq {seq[0]}: the entry hashes to" in result.output
    )


def test_ledger_check_fails_on_a_checkpoint_by_another_key(
    database: Path, key_folder: Path, tmp_path: Path
) -> None:
    assert (
        run("checkpoint", "--db", database, "--key", key_folder / "helpdesk-ai-log.key").exit_code
        == 0
    )
    assert run("keys", "generate", "helpdesk-ai-log", "--out", tmp_path / "other").exit_code == 0

    result = run(
        "ledger", "check", "--db", database, "--key", tmp_path / "other" / "helpdesk-ai-log.pub"
    )

    assert result.exit_code == 1
    assert (
        "FAILED: tenant 'acme'" in result.output and "no signature by a known key" in result.output
    )


def test_ledger_check_refuses_a_missing_database(tmp_path: Path) -> None:
    result = run("ledger", "check", "--db", tmp_path / "nothing.db")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "nothing.db").exists()
