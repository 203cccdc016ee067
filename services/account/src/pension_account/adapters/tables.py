"""The account service's read models (created by migrations/versions/0001)."""

import sqlalchemy as sa

metadata = sa.MetaData()

participants = sa.Table(
    "participants",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("id_number_digest", sa.String(64), nullable=False, unique=True),
    sa.Column("id_number_masked", sa.String(18), nullable=False),
    sa.Column("insurance_type", sa.String(16), nullable=False),
    sa.Column("insured_region", sa.String(6), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("ss_card_bank_code", sa.String(16), nullable=False),
    sa.Column("ss_card_account_masked", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
    sa.Column("registered_by", sa.String(64)),
    sa.Column("fund_account_id", sa.String(40)),
    sa.Column("fund_account_bank_code", sa.String(16)),
)

insurance_registry = sa.Table(
    "insurance_registry",
    metadata,
    sa.Column("id_number_digest", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("insurance_type", sa.String(16)),
    sa.Column("insured_region", sa.String(6)),
)

contribution_years = sa.Table(
    "contribution_years",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("contributed", sa.BigInteger, nullable=False),
    sa.Column("remaining_quota", sa.BigInteger, nullable=False),
)

participant_records = sa.Table(
    "participant_records",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("participant_id", sa.String(40), nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("amount", sa.BigInteger),
    sa.Column("fund_account_id", sa.String(40)),
    sa.Column("product_code", sa.String(40)),
    sa.Column("source_event_id", sa.String(64), nullable=False),
    sa.Column("source_event_type", sa.String(160), nullable=False),
    sa.Index("ix_participant_records_year", "participant_id", "year"),
)

withdrawal_applications = sa.Table(
    "withdrawal_applications",
    metadata,
    sa.Column("application_id", sa.String(40), primary_key=True),
    sa.Column("participant_id", sa.String(40), nullable=False, index=True),
    sa.Column("condition", sa.String(32), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("applied_at", sa.String(40), nullable=False),
    sa.Column("decided_at", sa.String(40)),
    sa.Column("decided_by", sa.String(64)),
)
