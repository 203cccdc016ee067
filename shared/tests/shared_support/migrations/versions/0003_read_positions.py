"""How far the tally's consumers have applied the ledgers they read.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

from pension_shared.schema import create_read_positions, drop_read_positions

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_read_positions(op)


def downgrade() -> None:
    drop_read_positions(op)
