"""`raas db upgrade`: bring a PostgreSQL database to the newest schema (Alembic migrations).

A SQLite ledger needs no such step: its file is created and checked when it is opened.
"""

from __future__ import annotations

import click
from rich.console import Console

stdout = Console(soft_wrap=True, highlight=False)


@click.group()
def db() -> None:
    """The PostgreSQL database's schema."""


@db.command("upgrade")
@click.option(
    "--db",
    "url",
    required=True,
    envvar="RAAS_DB",
    help="The database, postgresql://user@host:port/name.",
)
@click.option("--revision", default="head", show_default=True, help="Migrate up to this one.")
def upgrade(url: str, revision: str) -> None:
    """Apply the migrations the database has not had yet, up to REVISION (the newest)."""
    from raas.migrations import current, upgrade

    upgrade(url, revision)
    stdout.print(f"the database is at revision {current(url)}")
