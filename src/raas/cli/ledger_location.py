"""The `--db` option's value: a SQLite file path (or sqlite:///path), or a postgresql:// URL."""

from __future__ import annotations

from pathlib import Path

import click

from raas.ledger import SQLITE_SCHEME, is_postgres_url


class LedgerLocation(click.ParamType[str, object]):
    """A ledger location, kept as text for `raas.ledger.open_ledger`.

    With `exists`, a SQLite file must already be there (a database server is asked when opened).
    """

    name = "PATH|URL"

    def __init__(self, *, exists: bool = False) -> None:
        self.exists = exists

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        location = str(value)
        if is_postgres_url(location):
            return location
        path = Path(location.removeprefix(SQLITE_SCHEME))
        if path.is_dir():
            self.fail(f"{location!r} is a directory, not a ledger file", param, ctx)
        if self.exists and not path.exists():
            self.fail(f"{location!r} does not exist", param, ctx)
        return location
