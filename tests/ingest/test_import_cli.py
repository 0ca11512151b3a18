"""`raas import ...` as a user runs it: into a ledger (again: nothing stored twice), or to
standard output as NDJSON events that `raas ingest` reads; the warnings are listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from raas.cli.main import main
from raas.ingest.validate import parse_batch
from raas.ledger.sqlite import SqliteLedger

CASES = Path(__file__).resolve().parents[1] / "cases"
TAU_BENCH = CASES / "importers" / "tau-bench-retail.json"


def test_import_into_a_ledger_twice_stores_once(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    arguments = ["import", "tau-bench", str(TAU_BENCH), "--tenant", "acme", "--db", str(database)]
    first = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    assert "23 events, 23 stored, 0 already in the ledger" in first.output
    assert "9  assistant turn: no model, tokens or cost, no model call" in first.output
    again = CliRunner().invoke(main, arguments)
    assert "23 events, 0 stored, 23 already in the ledger" in again.output
    with SqliteLedger(database) as ledger:
        assert ledger.count("acme") == 23


def test_import_to_standard_output_then_ingest(tmp_path: Path) -> None:
    written = subprocess.run(
        [sys.executable, "-m", "raas.cli.main", "import", "otlp-json",
         str(CASES / "otlp" / "genai-traces.json"), "--tenant", "acme", "--out", "-"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    events = parse_batch(written.stdout, ndjson=True)
    assert [event.type for event in events] == [
        "dev.raas.model.call",
        "dev.raas.tool.call",
        "dev.raas.model.call",
    ]
    assert b"span skipped: no gen_ai.conversation.id" in written.stderr
    out = tmp_path / "events.ndjson"
    out.write_bytes(written.stdout)
    ingested = CliRunner().invoke(main, ["ingest", str(out), "--db", str(tmp_path / "l.db")])
    assert "3 stored" in ingested.output


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "runs.json"
    broken.write_text('{"not": "a list"}')
    result = CliRunner().invoke(
        main, ["import", "tau-bench", str(broken), "--tenant", "acme", "--out", "-"]
    )
    assert result.exit_code == 1
    assert "the top level must be a list of runs" in result.output
