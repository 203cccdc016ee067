"""The ledger mechanics and the payees read model.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from pension_shared.schema import create_mechanics_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_mechanics_tables(op)
    op.create_table(
        "payees",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("account_number_masked", sa.String(40), nullable=False),
        sa.Column("payee_sealed", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payees")
