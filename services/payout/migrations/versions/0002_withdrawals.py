"""Withdrawals read model and the embedded payment adapter's tables.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawals",
        sa.Column("withdrawal_id", sa.String(40), primary_key=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_due", sa.Date),
        sa.Column("awaiting_payment", sa.Boolean, nullable=False),
        sa.Column("view", sa.Text, nullable=False),
    )
    op.create_index("ix_withdrawals_participant_id", "withdrawals", ["participant_id"])
    op.create_table(
        "recorded_payments",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("account_number_masked", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table("failing_payee_banks", sa.Column("bank_code", sa.String(16), primary_key=True))


def downgrade() -> None:
    op.drop_table("failing_payee_banks")
    op.drop_table("recorded_payments")
    op.drop_table("withdrawals")
