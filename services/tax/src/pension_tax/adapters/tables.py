"""The tax service's read models (created by migrations/versions/0001)."""

import sqlalchemy as sa

metadata = sa.MetaData()

taxpayers = sa.Table(
    "taxpayers",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("id_number", sa.String(18), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
)
