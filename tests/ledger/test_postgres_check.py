"""`PostgresLedger.check` (behind `raas ledger check --db postgresql://...`) finds any change made
to the database behind the ledger's back, and names where: tenant, log index, seq, what differs.

Rows are changed here as an operator with full rights would: with the append-only triggers
switched off for the session (`session_replication_role = replica`). The ledger and its events
are test_sqlite_check's.

What would break: an edited entry, disclosure, leaf hash, frontier, key, customer, time, seq or
checkpoint that the check passes over, or a clean ledger reported as damaged.
"""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner
from test_sqlite_check import SIGNER, STRANGER, event

from raas.cli.main import main
from raas.ledger import PostgresLedger
from raas.ledger.keys import SignerKey

ACME_ROW = "tenant_number = (SELECT number FROM ledger_logs WHERE tenant = 'acme')"


@pytest.fixture
def url(postgres_url: str) -> str:
    """A ledger of two tenants, acme with checkpoints at sizes 13 and 17."""
    with PostgresLedger(postgres_url) as ledger:
        ledger.append([event(n, "globex" if n % 4 == 3 else "acme") for n in range(10)])
        ledger.append([event(n, "acme") for n in range(10, 15)])
        ledger.sign_checkpoint("acme", SIGNER)
        ledger.append([event(n, "acme") for n in range(15, 19)])
        ledger.sign_checkpoint("acme", SIGNER)
        ledger.append([event(n, "globex") for n in range(19, 23)])
    return postgres_url


def tamper(url: str, statement: str, parameters: tuple[object, ...] = ()) -> None:
    with psycopg.connect(url) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute(statement, parameters)


def value(url: str, query: str) -> object:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def check(url: str, verifiers: tuple[SignerKey, ...] = ()) -> str:
    with PostgresLedger(url) as ledger:
        found = ledger.check([signer.verifier() for signer in verifiers])
    assert found.problem is not None, "the check found nothing"
    return str(found.problem)


def test_a_ledger_nobody_touched_passes(url: str) -> None:
    with PostgresLedger(url) as ledger:
        found = ledger.check([SIGNER.verifier()])

    assert found.ok
    assert (found.tenants, found.entries, found.checkpoints, found.signatures_verified) == (
        2,
        23,
        2,
        2,
    )


@pytest.mark.parametrize("offset", [0, 30, -3])
def test_an_edited_entry_is_found_at_its_index(url: str, offset: int) -> None:
    seq = value(url, f"SELECT seq FROM ledger_events WHERE {ACME_ROW} AND log_index = 5")
    tamper(
        url,
        "UPDATE ledger_events SET entry = set_byte(entry, %s, get_byte(entry, %s) # 1)"
        f" WHERE {ACME_ROW} AND log_index = 5",
        (offset % 50, offset % 50),
    )
    assert check(url).startswith(f"tenant 'acme', log index 5, seq {seq}: the entry hashes to")


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (
            "UPDATE ledger_events SET disclosures = convert_to(replace(convert_from("
            f"disclosures, 'UTF8'), 'is late', 'is fine'), 'UTF8') WHERE {ACME_ROW}"
            " AND log_index = 1",
            "'data.text'",
        ),
        (
            f"UPDATE ledger_events SET disclosures = '{{}}' WHERE {ACME_ROW} AND log_index = 1",
            "not what this ledger makes",
        ),
        (
            "UPDATE ledger_events SET leaf_hash = set_byte(leaf_hash, 0, 0)"
            f" WHERE {ACME_ROW} AND log_index = 7",
            "log index 7",
        ),
        (
            f"DELETE FROM ledger_events WHERE {ACME_ROW} AND log_index = 9",
            "no entry is stored at log index 9",
        ),
        (
            f"DELETE FROM ledger_events WHERE {ACME_ROW} AND log_index = 16",
            "records 17 entries but only 16 are stored",
        ),
        (
            "UPDATE ledger_logs SET frontier = set_byte(frontier, 20, get_byte(frontier, 20) # 1)"
            " WHERE tenant = 'acme'",
            "stored frontier does not match",
        ),
        (
            f"UPDATE ledger_events SET seq = 1 WHERE {ACME_ROW} AND log_index = 3",
            "seq 1 is repeated",
        ),
        (
            f"UPDATE ledger_events SET customer = 'customer-9' WHERE {ACME_ROW} AND log_index = 4",
            "its row says 'customer-9'",
        ),
        (
            f"UPDATE ledger_events SET time_us = time_us + 1 WHERE {ACME_ROW} AND log_index = 4",
            "at another time",
        ),
        (
            f"UPDATE ledger_events SET id = 'event-99' WHERE {ACME_ROW} AND log_index = 4",
            "keyed as event 'event-99'",
        ),
        (
            "UPDATE ledger_checkpoints SET root = '\\x00' WHERE size = 13",
            "checkpoint at size 13 holds root",
        ),
        (
            "UPDATE ledger_checkpoints SET note = replace(note, E'\\n13\\n', E'\\n12\\n')"
            " WHERE size = 13",
            "does not state its size",
        ),
        (
            "INSERT INTO ledger_events SELECT tenant_number + 5, log_index, seq + 1000, source,"
            f" id, customer, time_us, leaf_hash, entry, disclosures FROM ledger_events"
            f" WHERE {ACME_ROW} AND log_index = 0",
            "24 event rows are stored but the logs hold 23",
        ),
        ("UPDATE ledger_meta SET max_seq = max_seq + 1", "no event has seq 24"),
    ],
)
def test_a_change_behind_the_ledgers_back_is_found(url: str, change: str, found: str) -> None:
    tamper(url, change)

    assert found in check(url)


def test_checkpoint_signatures_are_checked_with_the_keys_given(url: str) -> None:
    tamper(
        url,
        "UPDATE ledger_checkpoints SET note = regexp_replace(note, '.{6}\\n$', E'AAAAA=\\n')"
        " WHERE size = 13",
    )

    with PostgresLedger(url) as ledger:
        assert ledger.check().problem is None  # without keys, only what the note states
    assert "checkpoint at size 13" in check(url, (SIGNER,))
    assert "no signature by a known key" in check(url, (STRANGER,))


def test_raas_ledger_check_reads_a_postgres_ledger(url: str) -> None:
    runner = CliRunner()
    clean = runner.invoke(main, ["ledger", "check", "--db", url])
    tamper(url, f"DELETE FROM ledger_events WHERE {ACME_ROW} AND log_index = 9")
    damaged = runner.invoke(main, ["ledger", "check", "--db", url])

    assert (clean.exit_code, damaged.exit_code) == (0, 1)
    assert "ok: 2 logs, 23 entries, 2 checkpoints" in clean.output
    assert "FAILED: tenant 'acme', log index 9" in damaged.output
