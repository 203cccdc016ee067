"""The payout service's read models and the embedded payment adapter's tables (migrations 0001, 0002)."""

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

withdrawals = sa.Table(
    "withdrawals",
    metadata,
    sa.Column("withdrawal_id", sa.String(40), primary_key=True),
    sa.Column("participant_id", sa.String(40), nullable=False, index=True),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("next_due", sa.Date),
    sa.Column("awaiting_payment", sa.Boolean, nullable=False),
    sa.Column("view", sa.Text, nullable=False),
)

recorded_payments = sa.Table(
    "recorded_payments",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("account_number_masked", sa.String(40), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
)

failing_payee_banks = sa.Table(
    "failing_payee_banks",
    metadata,
    sa.Column("bank_code", sa.String(16), primary_key=True),
)
