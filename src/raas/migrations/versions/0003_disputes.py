"""The index of disputes filed through the HTTP API; the filings and rulings themselves are
ledger events (see raas.service.schema).

Revision ID: 0003_disputes
Revises: 0002_service
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from raas.service.schema import POSTGRES_DISPUTES

revision = "0003_disputes"
down_revision = "0002_service"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSTGRES_DISPUTES)


def downgrade() -> None:
    op.execute("DROP TABLE service_disputes")
