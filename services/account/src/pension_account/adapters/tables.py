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
)

insurance_registry = sa.Table(
    "insurance_registry",
    metadata,
    sa.Column("id_number_digest", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("insurance_type", sa.String(16)),
    sa.Column("insured_region", sa.String(6)),
)
