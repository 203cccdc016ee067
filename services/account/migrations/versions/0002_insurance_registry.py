"""The embedded default's stand-in for the social insurance registry.

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
        "insurance_registry",
        sa.Column("id_number_digest", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("insurance_type", sa.String(16)),
        sa.Column("insured_region", sa.String(6)),
    )


def downgrade() -> None:
    op.drop_table("insurance_registry")
