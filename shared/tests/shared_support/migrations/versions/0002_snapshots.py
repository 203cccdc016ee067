"""Snapshots of the tally's aggregates.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from pension_shared.schema import create_snapshots_table, drop_snapshots_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_snapshots_table(op)


def downgrade() -> None:
    drop_snapshots_table(op)
