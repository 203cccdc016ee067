"""The participant's bound fund account, yearly contributions and records (A-INF-2).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("participants", sa.Column("fund_account_id", sa.String(40)))
    op.add_column("participants", sa.Column("fund_account_bank_code", sa.String(16)))
    op.create_table(
        "contribution_years",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("contributed", sa.BigInteger, nullable=False),
        sa.Column("remaining_quota", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "participant_records",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger),
        sa.Column("fund_account_id", sa.String(40)),
        sa.Column("product_code", sa.String(40)),
        sa.Column("source_event_id", sa.String(64), nullable=False),
        sa.Column("source_event_type", sa.String(160), nullable=False),
    )
    op.create_index("ix_participant_records_year", "participant_records", ["participant_id", "year"])


def downgrade() -> None:
    op.drop_table("participant_records")
    op.drop_table("contribution_years")
    op.drop_column("participants", "fund_account_bank_code")
    op.drop_column("participants", "fund_account_id")
