"""Fixtures shared by every test directory."""

from postgres import empty_postgres_url, postgres_database, postgres_url

__all__ = ["empty_postgres_url", "postgres_database", "postgres_url"]
