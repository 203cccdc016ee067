"""The tax service's read models (created by migrations/versions/0001 and 0002). Every one of them is
a projection of the taxpayer streams and can be dropped and rebuilt from the events."""

import sqlalchemy as sa

metadata = sa.MetaData()

_Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

taxpayers = sa.Table(
    "taxpayers",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("id_number", sa.String(18), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

holding_banks = sa.Table(
    "holding_banks",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("fund_account_id", sa.String(40), nullable=False),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("branch_city", sa.String(16), nullable=False),
)

vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("voucher_no", sa.String(40), primary_key=True),
    sa.Column("position", _Position, nullable=False, unique=True),
    sa.Column("participant_id", sa.String(40), nullable=False),
    sa.Column("id_number", sa.String(18), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("cumulative_amount", sa.BigInteger, nullable=False),
    sa.Column("deductible_amount", sa.BigInteger, nullable=False),
    sa.Column("issued_at", sa.String(40), nullable=False),
    sa.Column("contribution_id", sa.String(40), nullable=False, unique=True),
    sa.Column("fund_account_id", sa.String(40), nullable=False),
    sa.Column("verification_code", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("voided_at", sa.String(40)),
    sa.Column("void_reason", sa.String(200)),
    sa.Index("ix_vouchers_participant_year", "participant_id", "year"),
)

withholdings = sa.Table(
    "withholdings",
    metadata,
    sa.Column("payout_id", sa.String(40), primary_key=True),
    sa.Column("position", _Position, nullable=False, unique=True),
    sa.Column("participant_id", sa.String(40), nullable=False),
    sa.Column("id_number", sa.String(18), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("withdrawal_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("gross", sa.BigInteger, nullable=False),
    sa.Column("tax", sa.BigInteger, nullable=False),
    sa.Column("net", sa.BigInteger, nullable=False),
    sa.Column("expected_tax", sa.BigInteger, nullable=False),
    sa.Column("discrepancy", sa.Boolean, nullable=False),
    sa.Column("withholding_city", sa.String(16), nullable=False),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("paid_at", sa.String(40), nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reversed_at", sa.String(40)),
    sa.Index("ix_withholdings_bank_month", "bank_code", "month"),
)

tax_years = sa.Table(
    "tax_years",
    metadata,
    sa.Column("participant_id", sa.String(40), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("contributed", sa.BigInteger, nullable=False),
    sa.Column("deductible", sa.BigInteger, nullable=False),
    sa.Column("withdrawn_gross", sa.BigInteger, nullable=False),
    sa.Column("tax_withheld", sa.BigInteger, nullable=False),
    sa.Column("statement_issued_at", sa.String(40)),
    sa.Index("ix_tax_years_open", "year", "statement_issued_at"),
)
