"""The ledger's events are indexed by type (pension_shared.schema.TYPE_INDEX), so that the events
of one type are found without reading them all.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

from pension_shared.schema import add_type_index, drop_type_index

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_type_index(op)


def downgrade() -> None:
    drop_type_index(op)
