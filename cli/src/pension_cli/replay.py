"""Rebuild a service's read models from zero beside the live ones, compare, and swap, while the
service keeps running.

How it stays correct with writers running:

1. The shadow tables are *temporary* tables with the live tables' names and columns, created on
   the replay's own connection. Both SQLite and PostgreSQL resolve an unqualified table name in
   the connection's temporary schema first, so the service's own projection code, unchanged,
   writes into the shadow tables on this connection (and reads the live ``events`` table, which
   has no shadow), while every other connection keeps seeing the live tables.
2. Phase one replays every event visible in one snapshot (PostgreSQL: a REPEATABLE READ
   transaction; SQLite: a deferred read transaction on WAL) without blocking anyone: writing
   temporary tables takes no lock on the live ones.
3. Phase two blocks writers of the ledger (PostgreSQL: ``LOCK TABLE events IN SHARE ROW
   EXCLUSIVE MODE``, which every append's INSERT waits for; SQLite: ``BEGIN IMMEDIATE``), replays
   every event not yet replayed (by position, so one that committed out of position order is not
   missed), compares the shadow rows with the live rows, and, when asked, swaps them in the same
   transaction: the live tables' rows are replaced by the shadow's. Readers see the old rows or
   the new ones, never a mix, and no event appended meanwhile can be lost, since none can be
   appended until the swap commits.

The swap replaces rows rather than renaming tables: a temporary table cannot be moved into a
permanent schema, and keeping the live tables themselves keeps their migration-made indexes,
constraints, grants and names exactly as Alembic knows them. Writers wait for the length of the
catch-up, comparison and copy only."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from pension_shared.ledger import EventStore
from pension_shared.schema import events

REPLAY_BATCH = 2000
"""Events given to the projections at a time (each projection's ``apply_batch``, when it has one)."""

Progress = Callable[[int], None]


@dataclass
class TableComparison:
    name: str
    live_rows: int
    replayed_rows: int
    only_live: list[tuple] = field(default_factory=list)
    only_replayed: list[tuple] = field(default_factory=list)
    changed: list[tuple[tuple, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    """Rows present on both sides (by primary key) with different values: key, {column: (live, replayed)}."""

    @property
    def identical(self) -> bool:
        return not self.only_live and not self.only_replayed and not self.changed

    @property
    def differences(self) -> int:
        return len(self.only_live) + len(self.only_replayed) + len(self.changed)


@dataclass
class ReplayResult:
    service: str
    replayed: int = 0
    caught_up: int = 0
    tables: list[TableComparison] = field(default_factory=list)
    swapped: bool = False
    writers_blocked_s: float = 0.0

    @property
    def identical(self) -> bool:
        return all(t.identical for t in self.tables)


def replay_engine(url: str) -> Engine:
    """An engine for the replay alone. On SQLite, transactions begin deferred (a snapshot that
    blocks no writer) unless the connection asks for ``BEGIN IMMEDIATE``."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, poolclass=NullPool)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql(connection.info.pop("begin_statement", "BEGIN"))

    return engine


class ShadowReplay:
    def __init__(self, store: EventStore, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self.tables = _projection_tables(store)
        self.postgres = engine.dialect.name == "postgresql"

    def run(self, *, swap: bool, progress: Progress | None = None, before_lock: Callable[[], None] | None = None) -> ReplayResult:
        result = ReplayResult(self.store.service)
        with self.engine.connect() as conn:
            live_schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one() if self.postgres else "main"
            conn.commit()
            seen: set[int] = set()
            if self.postgres:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                self._create_shadow_tables(conn)
                result.replayed = self._replay(conn, self.store.read_all(conn), seen, progress)
            if before_lock is not None:
                before_lock()
            if self.postgres:
                conn.execution_options(isolation_level="READ COMMITTED")
            else:
                conn.info["begin_statement"] = "BEGIN IMMEDIATE"
            started = time.monotonic()
            with conn.begin():
                if self.postgres:
                    conn.execute(sa.text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))
                result.caught_up = self._catch_up(conn, seen, progress)
                shadow_schema = "pg_temp" if self.postgres else "temp"
                pairs = [(_in_schema(t, live_schema), _in_schema(t, shadow_schema)) for t in self.tables]
                result.tables = [_compare(conn, live, shadow) for live, shadow in pairs]
                if swap:
                    for live, _ in reversed(pairs):
                        conn.execute(live.delete())
                    for live, shadow in pairs:
                        columns = [c.name for c in live.columns]
                        conn.execute(live.insert().from_select(columns, sa.select(*[shadow.c[n] for n in columns])))
                    result.swapped = True
            result.writers_blocked_s = time.monotonic() - started
            for table in reversed(self.tables):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {shadow_schema}.{conn.dialect.identifier_preparer.quote(table.name)}")
            conn.commit()
        return result

    def _create_shadow_tables(self, conn: Connection) -> None:
        metadata = sa.MetaData()
        for table in self.tables:
            ddl = str(sa.schema.CreateTable(table.to_metadata(metadata)).compile(dialect=conn.dialect))
            conn.exec_driver_sql(ddl.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1))

    def _replay(self, conn: Connection, envelopes: Iterable, seen: set[int], progress: Progress | None) -> int:
        """The events into the shadow tables, a batch at a time (as a rebuild does)."""
        count = 0
        events_in = iter(envelopes)
        while batch := list(itertools.islice(events_in, REPLAY_BATCH)):
            self.store.replay(conn, batch)
            seen.update(envelope.position for envelope in batch)
            count += len(batch)
            if progress is not None:
                progress(len(batch))
        return count

    def _catch_up(self, conn: Connection, seen: set[int], progress: Progress | None) -> int:
        positions = set(conn.execute(sa.select(events.c.position)).scalars())
        missing = positions - seen
        if not missing:
            return 0
        pending = (e for e in self.store.read_all(conn, after=min(missing) - 1) if e.position in missing)
        return self._replay(conn, pending, seen, progress)


def _projection_tables(store: EventStore) -> list[sa.Table]:
    tables: list[sa.Table] = []
    for projection in store.projections:
        for table in projection.tables:
            if table not in tables:
                tables.append(table)
    return tables


def _in_schema(table: sa.Table, schema: str) -> sa.Table:
    return table.to_metadata(sa.MetaData(), schema=schema)


def _compare(conn: Connection, live: sa.Table, shadow: sa.Table) -> TableComparison:
    live_rows = Counter(_rows(conn, live))
    shadow_rows = Counter(_rows(conn, shadow))
    comparison = TableComparison(live.name, sum(live_rows.values()), sum(shadow_rows.values()))
    only_live = sorted((live_rows - shadow_rows).elements(), key=repr)
    only_replayed = sorted((shadow_rows - live_rows).elements(), key=repr)
    columns = [c.name for c in live.columns]
    key_at = [columns.index(c.name) for c in live.primary_key.columns] or list(range(len(columns)))
    replayed_by_key = {tuple(row[i] for i in key_at): row for row in only_replayed}
    for row in only_live:
        key = tuple(row[i] for i in key_at)
        other = replayed_by_key.pop(key, None)
        if other is None:
            comparison.only_live.append(row)
            continue
        comparison.changed.append((key, {c: (a, b) for c, a, b in zip(columns, row, other) if a != b}))
    comparison.only_replayed = list(replayed_by_key.values())
    return comparison


def _rows(conn: Connection, table: sa.Table) -> Iterable[tuple[Any, ...]]:
    return (tuple(_comparable(v) for v in row) for row in conn.execute(sa.select(table)))


def _comparable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
