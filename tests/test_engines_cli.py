"""`raas settle --engine`: the same ledger at the same checkpoint settled with the reference
judge, DuckDB and Spark gives the same invoice bytes, adjustments and contract versions
included; DuckDB keeps its episode table beside the ledger and brings it up to date instead of
building it again. What would break: an engine that bills differently from the CLI (a missing
root, adjustments read from another table), or a table rebuilt on every settlement."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from engines import spark_missing
from factories import NOVEMBER, SOURCE
from raas.cli.main import main
from raas.core.events import Message, make_event
from raas.engine.episode_table import read_episode_table_state
from raas.ledger.sqlite import SqliteLedger
from test_disputes_cli import CONTRACT, ok, problems


def test_every_engine_gives_the_same_invoice_bytes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = tmp_path / "ledger.db"
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    text = CONTRACT.read_text() + "reopen: 20d\n"
    first.write_text(text)
    # A second version from mid-December with a longer window: it splits December and needs
    # an episode table of its own horizon.
    second.write_text(
        text.replace("version: 1 ", "version: 2 ")
        .replace("effective_from: 2026-11-01", "effective_from: 2026-12-15")
        .replace("price: 0.99", "price: 1.50")
        .replace("recontact_window_hours: 72 ", "recontact_window_hours: 96 ")
    )
    assert "recontact_window_hours: 96 " in second.read_text()
    with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
        ledger.append(problems(0, 12))
        signed = ledger.head("acme")
    ok("keys", "generate", "helpdesk-ai", "--out", tmp_path / "keys", cwd=tmp_path)
    key = tmp_path / "keys" / "helpdesk-ai.key"
    common = ("--contract", first, "--contract", second, "--db", database)
    november = "acme-support-v1-2026-11"

    ok("settle", "--period", "2026-11", "--engine", "duckdb", "--key", key,
       "--out", tmp_path / "duckdb", *common, cwd=tmp_path)  # fmt: skip
    table = tmp_path / "ledger.db.acme.259200s.episodes.duckdb"
    assert read_episode_table_state(table).size == signed
    inode = table.stat().st_ino
    # At the same checkpoint the reference must give the bytes DuckDB issued (the store
    # refuses other bytes for an issued invoice).
    ok("settle", "--period", "2026-11", "--engine", "reference",
       "--out", tmp_path / "reference", *common, cwd=tmp_path)  # fmt: skip
    assert_same(tmp_path, f"invoice-acme_{november}.json", ["duckdb", "reference"])

    with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
        late = problems(20, 2)  # November problems whose events arrive in December
        # The customer of c1 (confirmed) comes back 6 days later: reopened after billing.
        back = make_event(
            Message(role="customer", text="Still broken."),
            id="c1-back",
            source=SOURCE,
            time=NOVEMBER + timedelta(days=7),
            tenant="acme",
            customer="customer-1",
            conversation="c1",
            intent="refund",
        )
        ledger.append([*late, back, *problems(32, 20)])
        head = ledger.head("acme")
    engines = ["reference", "duckdb"]
    ok("settle", "--period", "2026-12", "--key", key, "--engine", "reference",
       "--out", tmp_path / "reference", *common, cwd=tmp_path)  # fmt: skip
    ok("settle", "--period", "2026-12", "--engine", "duckdb",
       "--out", tmp_path / "duckdb", *common, cwd=tmp_path)  # fmt: skip
    if spark_missing() is None:
        # In this process, on the test session's Spark: a JVM of its own per command is
        # minutes on a loaded two-core machine. The command leaves a running session running.
        session = request.getfixturevalue("spark")
        done = CliRunner().invoke(
            main,
            ["settle", "--period", "2026-12", "--engine", "spark",
             "--out", str(tmp_path / "spark"), *map(str, common)],
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert session.sparkContext._jsc is not None, "the command stopped the test's Spark"
        engines.append("spark")
    december = "acme-support-v1+v2-2026-12"
    issued = assert_same(tmp_path, f"invoice-acme_{december}.json", engines)
    assert b'"adjustments": [\n    {' in issued or b'"kind": "adjustment"' in issued
    assert b'"version": 2' in issued, "the second version rates its part"

    state = read_episode_table_state(table)
    assert state.size == head
    assert table.stat().st_ino == inode, "the table was updated in place, not built again"
    assert read_episode_table_state(tmp_path / "ledger.db.acme.345600s.episodes.duckdb").size == (
        head
    )
    if spark_missing():
        pytest.skip(f"Spark not compared: {spark_missing()}")


def assert_same(folder: Path, name: str, engines: list[str]) -> bytes:
    found = {engine: (folder / engine / name).read_bytes() for engine in engines}
    expected = found[engines[0]]
    for engine, data in found.items():
        assert data == expected, f"{engine} gave other bytes than {engines[0]} for {name}"
    return expected
