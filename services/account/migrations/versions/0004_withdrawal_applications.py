"""Withdrawal applications and their decisions.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_applications",
        sa.Column("application_id", sa.String(40), primary_key=True),
        sa.Column("participant_id", sa.String(40), nullable=False),
        sa.Column("condition", sa.String(32), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("applied_at", sa.String(40), nullable=False),
        sa.Column("decided_at", sa.String(40)),
        sa.Column("decided_by", sa.String(64)),
    )
    op.create_index("ix_withdrawal_applications_participant_id", "withdrawal_applications", ["participant_id"])


def downgrade() -> None:
    op.drop_table("withdrawal_applications")
