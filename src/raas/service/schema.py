"""The service store's tables, in SQLite's and PostgreSQL's words.

The PostgreSQL statements are what the Alembic revisions `0002_service` and later run; the SQLite
ones run
when a SQLite store opens (SQLite files have no migrations: `CREATE ... IF NOT EXISTS`).
"""

from __future__ import annotations

from typing import Final

SQLITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS service_tenants (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES service_tenants (name),
    scope TEXT NOT NULL,
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS service_api_keys_tenant ON service_api_keys (tenant);
CREATE TABLE IF NOT EXISTS service_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS service_audit_log_tenant ON service_audit_log (tenant, id);
CREATE TABLE IF NOT EXISTS service_contract_versions (
    tenant TEXT NOT NULL,
    contract TEXT NOT NULL,
    version INTEGER NOT NULL,
    effective_from TEXT NOT NULL,
    effective_until TEXT,
    document TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, contract, version)
);
CREATE TABLE IF NOT EXISTS service_settlement_runs (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    contract TEXT NOT NULL,
    version INTEGER NOT NULL,
    period TEXT NOT NULL,
    checkpoint_size INTEGER NOT NULL,
    status TEXT NOT NULL,
    invoice_id TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    created_by TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_expires_at TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS service_settlement_runs_queued ON service_settlement_runs
    (started_at, id) WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS service_disputes (
    tenant TEXT NOT NULL,
    dispute_id TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    filed_at TEXT NOT NULL,
    PRIMARY KEY (tenant, dispute_id)
);
CREATE TABLE IF NOT EXISTS service_model_prices (
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    input_token_price TEXT NOT NULL,
    output_token_price TEXT NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (tenant, model)
);
"""

POSTGRES_SCHEMA: Final = """
CREATE TABLE service_tenants (
    name TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE service_api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES service_tenants (name),
    scope TEXT NOT NULL CHECK (scope IN ('ingest', 'vendor-admin', 'buyer', 'auditor')),
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX service_api_keys_tenant ON service_api_keys (tenant);
CREATE TABLE service_audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX service_audit_log_tenant ON service_audit_log (tenant, id);
CREATE TABLE service_contract_versions (
    tenant TEXT NOT NULL,
    contract TEXT NOT NULL,
    version INTEGER NOT NULL,
    effective_from DATE NOT NULL,
    effective_until DATE,
    document TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, contract, version)
);
CREATE TABLE service_settlement_runs (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    contract TEXT NOT NULL,
    version INTEGER NOT NULL,
    period TEXT NOT NULL,
    checkpoint_size BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    invoice_id TEXT,
    error TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
"""

# Revision 0003_disputes: the index of disputes filed through the API (the ledger holds them).
POSTGRES_DISPUTES: Final = """
CREATE TABLE service_disputes (
    tenant TEXT NOT NULL,
    dispute_id TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    filed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, dispute_id)
);
"""

# Revision 0004_prices: each tenant's price table, by which OTLP spans are costed. Prices are
# exact decimals kept as written (NUMERIC keeps the scale it is given).
POSTGRES_PRICES: Final = """
CREATE TABLE service_model_prices (
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    input_token_price NUMERIC NOT NULL CHECK (input_token_price >= 0),
    output_token_price NUMERIC NOT NULL CHECK (output_token_price >= 0),
    currency TEXT NOT NULL,
    PRIMARY KEY (tenant, model)
);
"""

# Revision 0005_run_queue: settlement runs are queued first, then run by a worker.
POSTGRES_RUN_QUEUE: Final = """
ALTER TABLE service_settlement_runs DROP CONSTRAINT service_settlement_runs_status_check;
ALTER TABLE service_settlement_runs ADD CONSTRAINT service_settlement_runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed'));
CREATE INDEX service_settlement_runs_queued ON service_settlement_runs (started_at, id)
    WHERE status = 'queued';
"""

# Revision 0006_run_lease: a claim holds a run under a lease; a lapsed lease lets another worker
# claim it again, and `attempts` counts the claims. Runs claimed before (running, or ended) were
# claimed once; one left running has no lease, so it counts as lapsed.
POSTGRES_RUN_LEASE: Final = """
ALTER TABLE service_settlement_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0
    CHECK (attempts >= 0);
ALTER TABLE service_settlement_runs ADD COLUMN lease_expires_at TIMESTAMPTZ;
UPDATE service_settlement_runs SET attempts = 1 WHERE status <> 'queued';
CREATE INDEX service_settlement_runs_leased ON service_settlement_runs (lease_expires_at)
    WHERE status = 'running';
"""

# What a SQLite file made before revision 0006 lacks: added when it opens, then the index.
SQLITE_RUN_LEASE_COLUMNS: Final = (
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("lease_expires_at", "TEXT"),
)
SQLITE_RUN_LEASE: Final = """
CREATE INDEX IF NOT EXISTS service_settlement_runs_leased ON service_settlement_runs
    (lease_expires_at) WHERE status = 'running';
"""

POSTGRES_DROP: Final = """
DROP TABLE IF EXISTS service_settlement_runs;
DROP TABLE IF EXISTS service_contract_versions;
DROP TABLE IF EXISTS service_audit_log;
DROP TABLE IF EXISTS service_api_keys;
DROP TABLE IF EXISTS service_tenants;
"""


def statements(script: str) -> list[str]:
    """The script's statements, one each (none of them holds a semicolon of its own)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]
