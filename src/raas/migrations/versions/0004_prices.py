"""Each tenant's price table (model -> price per input and output token), by which the OTLP
traces endpoint costs GenAI spans (see raas.service.schema).

Revision ID: 0004_prices
Revises: 0003_disputes
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from raas.service.schema import POSTGRES_PRICES

revision = "0004_prices"
down_revision = "0003_disputes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(POSTGRES_PRICES)


def downgrade() -> None:
    op.execute("DROP TABLE service_model_prices")
