"""The payout service's read models (created by migrations/versions/0001)."""

import sqlalchemy as sa

metadata = sa.MetaData()

payees = sa.Table(
    "payees",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("account_number_masked", sa.String(40), nullable=False),
    sa.Column("payee_sealed", sa.Text, nullable=False),
)
