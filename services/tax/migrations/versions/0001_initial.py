"""The ledger mechanics and the taxpayers read model.

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
        "taxpayers",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("taxpayers")
