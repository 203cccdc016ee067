"""Deduction vouchers, withholdings, the holding bank and the yearly figures per taxpayer.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "holding_banks",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("fund_account_id", sa.String(40), nullable=False),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("branch_city", sa.String(16), nullable=False),
    )
    op.create_table(
        "vouchers",
        sa.Column("voucher_no", sa.String(40), primary_key=True),
        sa.Column("position", _Position, nullable=False, unique=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("cumulative_amount", sa.BigInteger, nullable=False),
        sa.Column("deductible_amount", sa.BigInteger, nullable=False),
        sa.Column("issued_at", sa.String(40), nullable=False),
        sa.Column("contribution_id", sa.String(40), nullable=False, unique=True),
        sa.Column("fund_account_id", sa.String(40), nullable=False),
        sa.Column("verification_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("voided_at", sa.String(40)),
        sa.Column("void_reason", sa.String(200)),
    )
    op.create_index("ix_vouchers_participant_year", "vouchers", ["participant_id", "year"])
    op.create_table(
        "withholdings",
        sa.Column("payout_id", sa.String(40), primary_key=True),
        sa.Column("position", _Position, nullable=False, unique=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("withdrawal_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("gross", sa.BigInteger, nullable=False),
        sa.Column("tax", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("expected_tax", sa.BigInteger, nullable=False),
        sa.Column("discrepancy", sa.Boolean, nullable=False),
        sa.Column("withholding_city", sa.String(16), nullable=False),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("paid_at", sa.String(40), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reversed_at", sa.String(40)),
    )
    op.create_index("ix_withholdings_bank_month", "withholdings", ["bank_code", "month"])
    op.create_table(
        "tax_years",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("contributed", sa.BigInteger, nullable=False),
        sa.Column("deductible", sa.BigInteger, nullable=False),
        sa.Column("withdrawn_gross", sa.BigInteger, nullable=False),
        sa.Column("tax_withheld", sa.BigInteger, nullable=False),
        sa.Column("statement_issued_at", sa.String(40)),
    )
    op.create_index("ix_tax_years_open", "tax_years", ["year", "statement_issued_at"])


def downgrade() -> None:
    op.drop_table("tax_years")
    op.drop_table("withholdings")
    op.drop_table("vouchers")
    op.drop_table("holding_banks")
