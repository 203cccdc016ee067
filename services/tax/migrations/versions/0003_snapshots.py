"""Snapshots of the taxpayers' aggregates, so that deciding on a contribution reads at most
SNAPSHOT_EVERY events however many vouchers the taxpayer has (pension_shared.ledger.EventStore.snapshot_after).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

from pension_shared.schema import create_snapshots_table, drop_snapshots_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_snapshots_table(op)


def downgrade() -> None:
    drop_snapshots_table(op)
