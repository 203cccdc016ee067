"""The tables every service's ledger needs. They are created by each service's own Alembic
migration (``create_mechanics_tables``), never at run time."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", _BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("stream_id", sa.String(128), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("type", sa.String(160), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("correlation_id", sa.String(64)),
    sa.Column("causation_id", sa.String(64)),
    sa.Column("prevhash", sa.String(64)),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("stream_id", "sequence", name="uq_events_stream_sequence"),
    sa.Index("ix_events_subject", "subject"),
)

stream_heads = sa.Table(
    "stream_heads",
    metadata,
    sa.Column("stream_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(128), nullable=False),
    sa.Column("key", sa.String(64)),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Index(
        "ix_outbox_unpublished", "id",
        postgresql_where=sa.text("published_at IS NULL"), sqlite_where=sa.text("published_at IS NULL"),
    ),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(128), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
)

read_positions = sa.Table(
    "read_positions",
    metadata,
    sa.Column("ledger", sa.String(32), primary_key=True),
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
"""How far the consumer has applied another service's ledger (``pension_shared.positions``): the
highest position applied of each participant's events, and of anyone's (``ANY_PARTICIPANT``)."""

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("institution", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
)

MECHANICS_TABLES = (events, stream_heads, outbox, inbox, idempotency_keys)
"""What each service's first migration creates."""

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("stream_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)
"""The latest snapshot of a stream's aggregate (``EventStore.save_snapshot``): a cache of the
fold of its events up to ``version``, whose last event's hash is ``hash``; never a source of
truth. Created by a later migration of the services whose aggregates keep snapshots
(``create_snapshots_table``)."""


def create_mechanics_tables(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """Called from each service's first migration."""
    bind = op.get_bind()
    for table in MECHANICS_TABLES:
        table.create(bind)


def create_snapshots_table(op) -> None:  # noqa: ANN001 - alembic's op proxy
    snapshots.create(op.get_bind())


def drop_snapshots_table(op) -> None:  # noqa: ANN001
    snapshots.drop(op.get_bind())


def drop_mechanics_tables(op) -> None:  # noqa: ANN001
    bind = op.get_bind()
    for table in reversed(MECHANICS_TABLES):
        table.drop(bind)


PARSED_DATA = "data_jsonb"
"""On PostgreSQL, a column of ``events`` beside ``data``: the event's data as ``jsonb``, computed by
the database from ``data`` when the row is inserted (a stored generated column), so it cannot
disagree with it. ``data`` stays the ledger's text, the one hashed and verified; this column is its
parse, kept so that a rebuild from zero (``pension_shared.bulk_rebuild``) reads each event's fields
without parsing its JSON again, which was most of a rebuild's work. Its price: about 3 µs of parsing
per appended event, and a ledger table half as large again. Not in ``events`` above, so that no
insert names it; SQLite has no ``jsonb``, and its rebuilds take the Python path, which reads ``data``."""


def add_parsed_data(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """Called from a later migration of each service. Rewrites the ledger table under an exclusive
    lock (every stored event parsed once): minutes on a ledger of tens of millions of events."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE events ADD COLUMN {PARSED_DATA} jsonb GENERATED ALWAYS AS (CAST(data AS jsonb)) STORED")


def drop_parsed_data(op) -> None:  # noqa: ANN001
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE events DROP COLUMN {PARSED_DATA}")


TYPE_INDEX = "ix_events_type"
"""An index of ``events`` by type: the events of one type (every voiding, every registration) are
found without reading the whole ledger, by an operator's query or by a rebuild from zero
(``pension_shared.bulk_rebuild``), which gathers the events of its rare types and counts the stored
types first. A ledger has a few dozen types, so the index is small (deduplicated: 7 MB for the
bench's million tax events) and cheap to keep up on every append. Not in ``events`` above: it came
after the first migrations, which create that table as they always have."""


def add_type_index(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """Called from a later migration of each service. Appends wait for the build (a share lock
    on the ledger): under a second for a million events."""
    op.create_index(TYPE_INDEX, "events", ["type"])


def drop_type_index(op) -> None:  # noqa: ANN001
    op.drop_index(TYPE_INDEX, table_name="events")


def create_read_positions(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """Called from a later migration of each service."""
    op.create_table(
        "read_positions",
        sa.Column("ledger", sa.String(32), primary_key=True),
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def drop_read_positions(op) -> None:  # noqa: ANN001
    op.drop_table("read_positions")
