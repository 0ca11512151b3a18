"""The C speed-ups of the append path (raas._native) against the pure-Python path they replace.

What would break: a salt or commitment that differs from the HMAC and SHA-256 the pure path
makes, a digest or key hash that differs from hashlib's, raas_rows reading a row out
of the wrong bytes or past the end of a packed column, or a ledger written with the speed-ups
that is not byte for byte the ledger the pure-Python path writes from the same batches.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import raas.core.commitments as commitments_module
import raas.ledger.batch as batch_module
import raas.ledger.log as log_module
import raas.ledger.sqlite as sqlite_module
from raas.core.events import Csat, Event, Message, make_event
from raas.ledger import SqliteLedger
from raas.ledger.log import extend_frontier
from raas.ledger.merkle import MerkleFrontier
from raas.native import speedups

pytestmark = pytest.mark.skipif(
    speedups is None,
    reason=(
        "raas._native is not in use (not built: no C compiler or no OpenSSL or SQLite "
        "headers; or RAAS_PURE_PYTHON is set): raas runs its pure-Python path"
    ),
)

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
ROWS = "SELECT * FROM raas_rows(?, ?, ?, ?, ?, ?, ?)"


@given(st.lists(st.binary(max_size=300), max_size=40), st.binary(max_size=3))
def test_sha256_each_is_hashlib_of_prefix_and_item(items: list[bytes], prefix: bytes) -> None:
    assert speedups is not None
    expected = [hashlib.sha256(prefix + item).digest() for item in items]
    assert speedups.sha256_each(items, prefix) == expected
    assert speedups.sha256_each(list(map(bytearray, items)), prefix) == expected


@given(st.binary(min_size=32, max_size=32), st.text(max_size=30), st.text())
def test_salted_commitments_are_those_of_the_pure_python_path(
    key: bytes, event_id: str, value: str
) -> None:
    arguments = (key, "acme", "urn:raas:test", event_id, "data.text", value)
    native = commitments_module.salted_commitment(*arguments)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(commitments_module, "speedups", None)
        assert commitments_module.salted_commitment(*arguments) == native
    salt = commitments_module.field_salt(*arguments[:5])
    assert native == (base64.b64encode(salt).decode(), commitments_module.commitment(salt, value))


def test_salted_commitments_refuse_what_the_pure_python_path_refuses() -> None:
    with pytest.raises(ValueError, match="a commitment key has 32 bytes, got 3"):
        commitments_module.salted_commitment(b"key", "acme", "urn:s", "e1", "data.text", "hi")
    with pytest.raises(UnicodeEncodeError):
        commitments_module.salted_commitment(
            bytes(32), "acme", "urn:s", "e1", "data.text", "\ud800"
        )


def test_sha256_each_refuses_what_is_not_bytes() -> None:
    assert speedups is not None
    with pytest.raises(TypeError):
        speedups.sha256_each(["text"], b"")
    with pytest.raises(TypeError):
        speedups.sha256_each([b"x"])


def packed(
    positions: list[int], first_seq: int, hashes: list[int], entries: list[bytes], more: list[bytes]
) -> tuple[object, ...]:
    return (
        array("q", positions),
        first_seq,
        array("q", hashes),
        b"".join(entries),
        array("q", _ends(entries)),
        b"".join(more),
        array("q", _ends(more)),
    )


def _ends(items: list[bytes]) -> list[int]:
    ends, total = [], 0
    for item in items:
        total += len(item)
        ends.append(total)
    return ends


@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.binary(max_size=50),
            st.binary(max_size=20),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 2**40),
)
def test_raas_rows_gives_back_each_packed_row(
    rows: list[tuple[int, int, bytes, bytes]], first_seq: int
) -> None:
    positions, hashes, entries, more = (list(column) for column in zip(*rows, strict=True))
    with sqlite3.connect(":memory:") as connection:
        got = connection.execute(ROWS, packed(positions, first_seq, hashes, entries, more))
        assert got.fetchall() == [
            (position, first_seq + row, key_hash, entry, disclosures)
            for row, (position, key_hash, entry, disclosures) in enumerate(rows)
        ]


# Two rows packed right, and how each column can be packed wrong.
TWO_ROWS = packed([1, 2], 1, [5, 6], [b"a", b"bc"], [b"{}", b"{}"])


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        (2, array("q", [5]), "the arrays must hold one int64 for every row"),
        (4, array("q", [1, 4]), "the ends must rise within the bytes"),
        (6, array("q", [2, 1]), "the ends must rise within the bytes"),
        (1, "one", "first_seq must be an integer"),
        (1, 2**63 - 2, "first_seq must be a seq the rows can count on from"),
        (1, -1, "first_seq must be a seq the rows can count on from"),
        (0, "text", "the arrays and the bytes must be blobs"),
    ],
)
def test_raas_rows_refuses_columns_that_do_not_fit(column: int, value: object, reason: str) -> None:
    arguments = list(TWO_ROWS)
    arguments[column] = value
    with sqlite3.connect(":memory:") as connection:
        assert len(connection.execute(ROWS, TWO_ROWS).fetchall()) == 2
        with pytest.raises(sqlite3.OperationalError, match=reason):
            connection.execute(ROWS, arguments).fetchall()


def test_raas_rows_needs_every_argument() -> None:
    with (
        sqlite3.connect(":memory:") as connection,
        pytest.raises(sqlite3.OperationalError, match="raas_rows takes 7 arguments"),
    ):
        connection.execute("SELECT * FROM raas_rows(x'', 0)").fetchall()


def workload() -> list[list[Event]]:
    """Batches of two tenants and several customers, with personal text, a key repeated inside
    a batch and a batch delivered again (the looked-up path)."""

    def event(number: int, tenant: str) -> Event:
        data = Message(role="customer", text=f"my parcel {number}") if number % 3 else Csat(score=4)
        return make_event(
            data,
            id=f"event-{number}",
            source="urn:raas:test:agents",
            time=START + timedelta(seconds=number),
            tenant=tenant,
            customer=f"customer-{number % 7}",
            conversation=f"conversation-{number // 4}",
        )

    first = [event(number, "acme" if number % 5 else "globex") for number in range(300)]
    second = [event(number, "acme") for number in range(300, 420)]
    return [first, second + second[:3], [*first[100:150], event(500, "acme")]]


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


def test_a_ledger_written_natively_is_the_one_the_pure_python_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_path, pure_path = tmp_path / "native.db", tmp_path / "pure.db"
    with SqliteLedger(native_path):
        pass  # the same file, so the same commitment key, for both
    shutil.copy(native_path, pure_path)
    batches = workload()
    with SqliteLedger(native_path) as ledger:
        native_receipts = [ledger.append(batch) for batch in batches]
    monkeypatch.setattr(sqlite_module, "speedups", None)
    monkeypatch.setattr(batch_module, "speedups", None)
    monkeypatch.setattr(log_module, "speedups", None)
    monkeypatch.setattr(commitments_module, "speedups", None)
    with SqliteLedger(pure_path) as ledger:
        pure_receipts = [ledger.append(batch) for batch in batches]
    assert native_receipts == pure_receipts
    assert [receipt.duplicates for receipt in native_receipts] == [0, 3, 50]
    native_dump = dump(native_path)
    assert native_dump == dump(pure_path)
    assert len([line for line in native_dump if 'INTO "events"' in line]) == 421


def test_raas_pure_python_turns_the_speed_ups_off() -> None:
    code = "from raas.native import speedups; print(speedups)"
    environment = {**os.environ, "RAAS_PURE_PYTHON": "1"}
    shown = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "None"


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40).filter(lambda n: len(n) % 2 == 0))
def test_sha256_pairs_is_hashlib_of_prefix_and_each_pair(nodes: list[bytes]) -> None:
    assert speedups is not None
    expected = [
        hashlib.sha256(b"\x01" + left + right).digest()
        for left, right in zip(nodes[::2], nodes[1::2], strict=True)
    ]
    assert speedups.sha256_pairs(nodes, b"\x01") == expected
    with pytest.raises(ValueError, match="an even number of items"):
        speedups.sha256_pairs([*nodes, b"odd"], b"\x01")


@given(st.integers(0, 300), st.integers(1, 300))
def test_frontiers_extended_natively_are_those_of_the_pure_python_path(
    size: int, added: int
) -> None:
    leaves = [hashlib.sha256(number.to_bytes(4, "big")).digest() for number in range(size + added)]
    before, whole = MerkleFrontier(), MerkleFrontier()
    before.extend(leaves[:size])
    whole.extend(leaves)
    native = extend_frontier(before, leaves[size:])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module, "speedups", None)
        assert extend_frontier(before, leaves[size:]) == native
    assert native == whole
