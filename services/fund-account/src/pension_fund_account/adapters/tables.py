"""The fund-account service's read models (created by migrations/versions/0001)."""

import sqlalchemy as sa

metadata = sa.MetaData()

known_participants = sa.Table(
    "known_participants",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("insurance_type", sa.String(16), nullable=False),
    sa.Column("insured_region", sa.String(6), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
)
