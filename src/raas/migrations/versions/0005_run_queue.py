"""Settlement runs become a queue: a run is `queued` when asked for, then claimed and run by the
server's settlement worker (see raas.service.worker and raas.service.schema).

Revision ID: 0005_run_queue
Revises: 0004_prices
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from raas.service.schema import POSTGRES_RUN_QUEUE

revision = "0005_run_queue"
down_revision = "0004_prices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSTGRES_RUN_QUEUE)


def downgrade() -> None:
    op.execute(
        "DROP INDEX service_settlement_runs_queued; "
        "ALTER TABLE service_settlement_runs DROP CONSTRAINT service_settlement_runs_status_check; "
        "ALTER TABLE service_settlement_runs ADD CONSTRAINT service_settlement_runs_status_check "
        "CHECK (status IN ('running', 'succeeded', 'failed'))"
    )
