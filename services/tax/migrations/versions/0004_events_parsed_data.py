"""The ledger's events keep their data parsed, as jsonb, beside its text
(pension_shared.schema.PARSED_DATA), for rebuilds from zero.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

from pension_shared.schema import add_parsed_data, drop_parsed_data

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_parsed_data(op)


def downgrade() -> None:
    drop_parsed_data(op)
