"""Engines for the two database backends: PostgreSQL in production, SQLite in the embedded
default. Both are configured for durability: an acknowledged commit survives a kill."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any, Sequence, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine


def create_engine(url: str, *, pool_size: int = 20) -> Engine:
    """An engine whose pool keeps ``pool_size`` connections open and opens no more: a request
    beyond them waits for one to come back (a 503 if none does within the pool's 30 s). Each
    connection opened costs PostgreSQL a new backend process, its catalog caches filled again
    and every statement psycopg had prepared parsed and planned again, so connections are kept,
    never opened for a burst and closed after it: with 20 more allowed as overflow, one quick
    bench opened 169 sessions to the fund-account database (most in its open-loop phases);
    without, 54. The size kept must cover the usual concurrency: at 16 concurrent requests a
    pool of 10 opened a connection for one contribution in seven, when overflow was allowed."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    parse_statement_texts_once()
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=0, pool_recycle=1800)
    event.listen(engine, "checkout", _still_connected(engine.dialect))
    return engine


STATEMENT_TEXTS_PARSED_ONCE = (1 << 16, 1 << 12)
"""(bytes, parameters): the largest statement text whose parsing psycopg remembers, here."""


def parse_statement_texts_once() -> None:
    """Have psycopg remember its parsing of every statement text this project sends.

    Before each execution psycopg turns a text's ``%(name)s`` placeholders into ``$n`` by
    parsing it in Python, and it remembers the result (up to 128 texts) only for a text of at
    most 4,096 bytes with at most 50 parameters: ORM-made statements whose texts vary with their
    row counts would otherwise fill its cache. This project's texts do not vary so: every list
    bound to an IN is padded to a power of two, a parameter per value (``bound_list``). But a
    list of more than 50 values, or 25 pairs, was parsed at every execution: 382 µs for the
    relay's marking of 64 rows as published, 3.0 ms for 512 (the relay's batch), and the
    consumers' reads of a batch's rows likewise. The limits are psycopg's module settings, read
    at each execution; they are raised to the largest text this project builds (the relay's
    512 ids, 10.7 KB) with room, never lowered. ``test_db_pool`` fails if psycopg renames them."""
    from psycopg import _queries

    length, parameters = STATEMENT_TEXTS_PARSED_ONCE
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, length)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, parameters)


def _still_connected(dialect: sa.Dialect) -> Any:
    """A pool checkout's check that its connection still reaches the server, without a round trip
    while the connection is quiet. A server that closes a connection (a restart, a terminated
    backend, an idle timeout) sends it a goodbye or an end of stream, so an idle connection with
    something to read is the only kind that may be gone: that one is pinged, and replaced when the
    ping fails, as SQLAlchemy's ``pool_pre_ping`` does for every checkout. A ping on each checkout
    cost about 0.1 ms of Python and a round trip per command and per consumer or relay batch."""

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _quiet(dbapi_connection):
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure to answer means the connection is gone
            raise sa.exc.InvalidatePoolError(f"the connection no longer reaches the server ({exc})") from exc
        if not alive:
            raise sa.exc.InvalidatePoolError("the connection no longer reaches the server")

    return checkout


def _quiet(dbapi_connection: Any) -> bool:
    """True when the connection is open and the server has sent it nothing since its last reply."""
    try:
        if dbapi_connection.closed:
            return False
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return not poller.poll(0)  # an end of stream or a hang-up is reported as an event too
    except Exception:  # noqa: BLE001 - a connection that cannot be polled is pinged
        return False


def _sqlite_engine(url: str) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:  # noqa: ANN001
        # Let SQLAlchemy, not the driver, decide where transactions begin (so SAVEPOINT works),
        # and keep an acknowledged commit on disk even if the process is killed.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001
        # Take the write lock up front: SQLite writers are serialised anyway, and this avoids
        # deadlocked lock upgrades between two transactions that both read first.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


T = TypeVar("T")


def padded(values: Sequence[T]) -> list[T]:
    """The values with the last one repeated up to the next power of two in length, for a list
    bound to an IN (``in_list``): each length is a statement text of its own, and psycopg
    prepares a text only from its fifth run on a connection and keeps the hundred used last.
    Unpadded, a consumer's batches of every size were new texts, parsed and planned each time,
    and pushed its fixed statements out of the prepared ones (30 % of the account database's
    statements were planned). Padded, a statement has one text per power of two. Repeating a
    value changes nothing an IN selects, updates or deletes."""
    if not values:
        return []
    size = power_of_two_at_least(len(values))
    return [*values, *(values[-1] for _ in range(size - len(values)))]


def in_list(expression: sa.ColumnElement[Any], name: str, size: int) -> sa.ColumnElement[bool]:
    """``expression IN (:name_0, ..., :name_<size - 1>)``, for a statement built once per size
    and given the parameters of ``bound_list(name, values)``. ``expression`` is a column, or
    a ``tuple_`` of columns (each value then a tuple). An expanding bind parameter, one
    statement for every length, has SQLAlchemy write the placeholders into the compiled text on
    every run: 25 to 35 % of the Python of executing the statement, whatever its size (a head
    read of 2 streams 257 against 192 µs, 64 streams 1,186 against 741 µs)."""
    if isinstance(expression, sa.Tuple):
        columns = list(expression.clauses)
        return expression.in_([
            sa.tuple_(*(sa.bindparam(f"{name}_{i}_{j}", type_=c.type) for j, c in enumerate(columns)))
            for i in range(size)
        ])
    return expression.in_([sa.bindparam(f"{name}_{i}", type_=expression.type) for i in range(size)])


def bound_list(name: str, values: Sequence[Any]) -> tuple[int, dict[str, Any]]:
    """``values`` ``padded`` and bound for ``in_list(..., name, size)``: the size to build the
    statement for (a power of two) and the statement's parameters holding them."""
    params: dict[str, Any] = {}
    values = padded(values)
    for i, value in enumerate(values):
        if isinstance(value, tuple):
            for j, part in enumerate(value):
                params[f"{name}_{i}_{j}"] = part
        else:
            params[f"{name}_{i}"] = value
    return len(values), params


def power_of_two_at_least(n: int) -> int:
    """The least power of two not below ``n`` (at least 1): the sizes a statement is written for,
    so that it has one text per power of two rather than one per length."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """The INSERT of the dialect named (``conn.dialect.name``), with its ON CONFLICT clauses."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def insert_ignoring_duplicates(dialect: str, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT (primary key) DO NOTHING for the dialect named (``conn.dialect.name``):
    with RETURNING it tells in one round trip whether the row was new, where a savepoint around a
    plain INSERT takes three. A concurrent insert of the same key waits for the other transaction,
    then inserts nothing."""
    key = [c.name for c in table.primary_key.columns]
    return dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=key)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
