"""The embedded message log and its consumer-group offsets.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_records",
        sa.Column("topic", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64)),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("appended_at", sa.Float, nullable=False),
    )
    op.create_table(
        "log_offsets",
        sa.Column("group_id", sa.String(128), primary_key=True),
        sa.Column("topic", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_offsets")
    op.drop_table("log_records")
