"""Fixtures shared by every test directory, and the hypothesis profile every test runs under."""

from hypothesis import HealthCheck, settings

from engines import settle_events, spark, sql_engine
from postgres import (
    empty_postgres_url,
    ledger,
    ledger_location,
    postgres_database,
    postgres_url,
)

# The machines that run the suite are shared and often loaded many times over their two cores:
# a per-example deadline or a "too slow" health check then fails on the machine, not the code.
# Timing belongs in bench/; here every property runs to completion however long it takes.
settings.register_profile(
    "raas",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("raas")

__all__ = [
    "empty_postgres_url",
    "ledger",
    "ledger_location",
    "postgres_database",
    "postgres_url",
    "settle_events",
    "spark",
    "sql_engine",
]
