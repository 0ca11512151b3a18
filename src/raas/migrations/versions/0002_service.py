"""The service's tables: tenants, API keys (hashed), the audit log, contract versions, settlement
runs and the index of disputes filed through the API (see raas.service.schema).

Revision ID: 0002_service
Revises: 0001_ledger
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from raas.service.schema import POSTGRES_DROP, POSTGRES_SCHEMA

revision = "0002_service"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSTGRES_SCHEMA)


def downgrade() -> None:
    op.execute(POSTGRES_DROP)
