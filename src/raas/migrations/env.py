"""Alembic's entry point for raas: migrate the connection `raas.migrations.upgrade` hands over,
or, run from the alembic command line, one opened from `sqlalchemy.url`.

The revisions write SQL themselves (no models to compare against), so there is no metadata.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _migrate(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "set sqlalchemy.url, or call raas.migrations.upgrade"
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    finally:
        engine.dispose()


_run()
