"""How far the consumer has applied each other service's ledger, per participant, for reads
given a position (pension_shared.positions).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

from pension_shared.schema import create_read_positions, drop_read_positions

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_read_positions(op)


def downgrade() -> None:
    drop_read_positions(op)
