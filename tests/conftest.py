"""Fixtures shared by every test directory."""

from postgres import (
    empty_postgres_url,
    ledger,
    ledger_location,
    postgres_database,
    postgres_url,
)

__all__ = ["empty_postgres_url", "ledger", "ledger_location", "postgres_database", "postgres_url"]
