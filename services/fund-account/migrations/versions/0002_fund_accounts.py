"""Read models of the closed loop: fund accounts, holdings, products, the yearly quota registry.

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
        "fund_accounts",
        sa.Column("fund_account_id", sa.String(40), primary_key=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("branch_city", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cash", sa.BigInteger, nullable=False),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_fund_accounts_participant_id", "fund_accounts", ["participant_id"])
    op.create_table(
        "holdings",
        sa.Column("fund_account_id", sa.String(40), primary_key=True),
        sa.Column("product_code", sa.String(32), primary_key=True),
        sa.Column("units", sa.BigInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "products",
        sa.Column("product_code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("product_type", sa.String(32), nullable=False),
        sa.Column("eligible_from", sa.String(10), nullable=False),
        sa.Column("listed_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "participant_quota",
        sa.Column("participant_id", sa.String(40), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("contributed", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("participant_quota")
    op.drop_table("products")
    op.drop_table("holdings")
    op.drop_index("ix_fund_accounts_participant_id", table_name="fund_accounts")
    op.drop_table("fund_accounts")
