"""The ledger mechanics and the participants read model.

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
        "participants",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("id_number_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("id_number_masked", sa.String(18), nullable=False),
        sa.Column("insurance_type", sa.String(16), nullable=False),
        sa.Column("insured_region", sa.String(6), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("ss_card_bank_code", sa.String(16), nullable=False),
        sa.Column("ss_card_account_masked", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
        sa.Column("registered_by", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("participants")
