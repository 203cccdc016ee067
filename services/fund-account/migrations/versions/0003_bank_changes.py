"""Bank changes (A-CHG-1..7): the read model of each change's progress.

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
    op.create_table(
        "bank_changes",
        sa.Column("bank_change_id", sa.String(40), primary_key=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("old_fund_account_id", sa.String(40), nullable=False),
        sa.Column("old_bank_code", sa.String(16), nullable=False),
        sa.Column("new_bank_code", sa.String(16), nullable=False),
        sa.Column("new_branch_city", sa.String(64), nullable=False),
        sa.Column("new_fund_account_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(256)),
        sa.Column("requested_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_bank_changes_participant_id", "bank_changes", ["participant_id"])


def downgrade() -> None:
    op.drop_index("ix_bank_changes_participant_id", table_name="bank_changes")
    op.drop_table("bank_changes")
