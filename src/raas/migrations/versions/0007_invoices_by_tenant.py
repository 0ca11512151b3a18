"""Issued invoices are keyed by (tenant, id), not id alone: an id names a contract, version and
period, and two buyers' contracts may share a name (see raas.ledger.postgres).

The append-only trigger stays on the table (ALTER TABLE is not a row update); rows and bytes
are kept. Going back refuses while two tenants hold an invoice of the same id.

Revision ID: 0007_invoices_by_tenant
Revises: 0006_run_lease
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0007_invoices_by_tenant"
down_revision = "0006_run_lease"
branch_labels = None
depends_on = None

# The key (tenant, id) is also the index the tenant's list reads, so the old one goes.
_UPGRADE = """
ALTER TABLE ledger_invoices DROP CONSTRAINT ledger_invoices_pkey;
ALTER TABLE ledger_invoices ADD CONSTRAINT ledger_invoices_pkey PRIMARY KEY (tenant, id);
DROP INDEX ledger_invoices_by_tenant;
"""

_DOWNGRADE = """
DO $$
DECLARE shared text;
BEGIN
    SELECT id INTO shared FROM ledger_invoices GROUP BY id HAVING count(*) > 1 LIMIT 1;
    IF shared IS NOT NULL THEN
        RAISE EXCEPTION 'cannot key invoices by id alone: several tenants hold invoice %', shared;
    END IF;
END
$$;
CREATE INDEX ledger_invoices_by_tenant ON ledger_invoices (tenant, id);
ALTER TABLE ledger_invoices DROP CONSTRAINT ledger_invoices_pkey;
ALTER TABLE ledger_invoices ADD CONSTRAINT ledger_invoices_pkey PRIMARY KEY (id);
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
