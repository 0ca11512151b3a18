"""Where `raas settle` keeps its episode tables: beside a SQLite ledger; for PostgreSQL in the
user's data folder (never the current folder), named after the server and database; in
`--table-dir` when given. What would break: tables strewn wherever the command ran, or two
PostgreSQL databases sharing one table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from raas.cli.main import main
from raas.engine.episode_table import read_episode_table_state
from raas.engine.on_ledger import (
    default_table_dir,
    episode_table_path,
    episode_tables_for,
    tenant_file_name,
)
from raas.ledger import open_ledger
from raas.ledger.keys import generate, write_signer_key
from test_disputes_cli import CONTRACT, problems

SERVER = "postgresql://postgres@127.0.0.1:5432"


def test_postgres_tables_go_to_the_data_folder_named_after_server_and_database(
    tmp_path: Path,
) -> None:
    data = {"XDG_DATA_HOME": str(tmp_path / "data")}
    assert default_table_dir(data) == tmp_path / "data" / "raas" / "episode-tables"
    relative = {"XDG_DATA_HOME": "data"}  # ignored, as the XDG spec says
    assert default_table_dir(relative) == Path.home() / ".local/share/raas/episode-tables"
    folder, prefix = episode_tables_for(f"{SERVER}/raas", tmp_path / "tables")
    assert folder == tmp_path / "tables" and prefix.startswith("postgresql-")
    other_user = episode_tables_for("postgresql://finance:secret@127.0.0.1:5432/raas")
    assert other_user == (default_table_dir(), prefix), "the user and password do not count"
    assert episode_tables_for(f"{SERVER}/raas_test")[1] != prefix, "another database"
    assert episode_tables_for("postgresql://postgres@10.0.0.9:5432/raas")[1] != prefix
    assert episode_tables_for("sqlite:///ledgers/raas.db") == (Path("ledgers"), "raas.db")
    assert episode_tables_for(tmp_path / "raas.db", "t") == (Path("t"), "raas.db")


@pytest.mark.parametrize("tenant", ["../x", "a/b", "", ".hidden", "..", "x" * 65, "acme\\eu"])
def test_a_tenant_that_is_no_plain_name_names_a_file_in_the_folder(
    tenant: str, tmp_path: Path
) -> None:
    # Tenants come from events and contracts; a buyer "../x" must not put a table elsewhere.
    name = tenant_file_name(tenant)
    assert len(name) == 64 and set(name) <= set("0123456789abcdef")
    path = episode_table_path(tmp_path, "raas.db", tenant, 259_200)
    assert path.parent == tmp_path and not path.name.startswith(".")
    assert tenant_file_name("acme-eu") == "acme-eu" != tenant_file_name("acme-eu ")


def test_settle_on_postgres_leaves_the_current_folder_alone(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ledger(postgres_url, vendor="helpdesk-ai") as ledger:
        ledger.append(problems(0, 3))
        head = ledger.head("acme")
    key = tmp_path / "helpdesk-ai.key"
    write_signer_key(key, generate("helpdesk-ai")[0])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("RAAS_TABLE_DIR", raising=False)
    common = ["--contract", str(CONTRACT), "--period", "2026-11", "--db", postgres_url]
    common += ["--engine", "duckdb", "--out", str(tmp_path / "out")]

    done = CliRunner().invoke(main, ["settle", "--key", str(key), *common])
    assert done.exit_code == 0, done.output
    assert list(elsewhere.iterdir()) == []
    folder, prefix = episode_tables_for(postgres_url)
    assert folder == tmp_path / "data" / "raas" / "episode-tables"
    [table] = folder.glob(f"{prefix}.acme.*.episodes.duckdb")
    assert read_episode_table_state(table).size == head

    chosen = tmp_path / "tables"
    done = CliRunner().invoke(main, ["settle", *common], env={"RAAS_TABLE_DIR": str(chosen)})
    assert done.exit_code == 0, done.output
    [table] = chosen.glob(f"{prefix}.acme.*.episodes.duckdb")
    assert read_episode_table_state(table).size == head
    assert list(elsewhere.iterdir()) == []
