"""The ledger mechanics and the toy tally read models.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from pension_shared.schema import create_mechanics_tables, drop_mechanics_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_mechanics_tables(op)
    # The producer's projection: totals per subject, maintained inline from its own events.
    op.create_table(
        "tally_totals",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("last_event_id", sa.String(64), nullable=False),
    )
    # The consumer's effect: what it received from the log, per subject.
    op.create_table(
        "tally_received",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tally_received")
    op.drop_table("tally_totals")
    drop_mechanics_tables(op)
