"""Records keep their headers, as Kafka's do (the relay sends each event's ledger position in one).

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
    op.add_column("log_records", sa.Column("headers", sa.LargeBinary))


def downgrade() -> None:
    with op.batch_alter_table("log_records") as table:
        table.drop_column("headers")
