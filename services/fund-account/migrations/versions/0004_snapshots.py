"""Snapshots of the fund accounts' and participants' aggregates, so that a command reads at most
SNAPSHOT_EVERY events however long the account's history (pension_shared.ledger.EventStore.snapshot_after).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

from pension_shared.schema import create_snapshots_table, drop_snapshots_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_snapshots_table(op)


def downgrade() -> None:
    drop_snapshots_table(op)
