"""Settlement runs are claimed under a lease: a run whose claimant died (its lease lapsed) is
claimed again, up to a bounded number of attempts (see raas.service.worker and
raas.service.schema).

Revision ID: 0006_run_lease
Revises: 0005_run_queue
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from raas.service.schema import POSTGRES_RUN_LEASE

revision = "0006_run_lease"
down_revision = "0005_run_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSTGRES_RUN_LEASE)


def downgrade() -> None:
    op.execute(
        "DROP INDEX service_settlement_runs_leased; "
        "ALTER TABLE service_settlement_runs DROP COLUMN lease_expires_at; "
        "ALTER TABLE service_settlement_runs DROP COLUMN attempts"
    )
