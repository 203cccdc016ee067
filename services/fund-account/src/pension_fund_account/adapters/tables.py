"""The fund-account service's read models (created by migrations/versions/0001 to 0003).

All of them are projections of the service's own events, dropped and rebuilt from zero by
``EventStore.rebuild_projections``."""

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

fund_accounts = sa.Table(
    "fund_accounts",
    metadata,
    sa.Column("fund_account_id", sa.String(40), primary_key=True),
    sa.Column("participant_id", sa.String(40), nullable=False, index=True),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("branch_city", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cash", sa.BigInteger, nullable=False),
    sa.Column("opened_at", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

holdings = sa.Table(
    "holdings",
    metadata,
    sa.Column("fund_account_id", sa.String(40), primary_key=True),
    sa.Column("product_code", sa.String(32), primary_key=True),
    sa.Column("units", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.BigInteger, nullable=False),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("product_code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("product_type", sa.String(32), nullable=False),
    sa.Column("eligible_from", sa.String(10), nullable=False),
    sa.Column("listed_at", sa.String(40), nullable=False),
)

participant_quota = sa.Table(
    "participant_quota",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("contributed", sa.BigInteger, nullable=False),
)

bank_changes = sa.Table(
    "bank_changes",
    metadata,
    sa.Column("bank_change_id", sa.String(40), primary_key=True),
    sa.Column("participant_id", sa.String(40), nullable=False, index=True),
    sa.Column("old_fund_account_id", sa.String(40), nullable=False),
    sa.Column("old_bank_code", sa.String(16), nullable=False),
    sa.Column("new_bank_code", sa.String(16), nullable=False),
    sa.Column("new_branch_city", sa.String(64), nullable=False),
    sa.Column("new_fund_account_id", sa.String(40)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(256)),
    sa.Column("requested_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
