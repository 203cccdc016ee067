"""Rebuilding read models from zero on PostgreSQL, set-based: each read model computed by SQL
straight from the ``events`` table, loaded into tables without indexes, the indexes built after.

A projection may carry a set-based form (``set_based``, a ``SetBased``): the same fold as its
``apply`` / ``apply_batch``, written as SQL over the stored events (``events.data`` is the
canonical JSON text of the event's data, ``events.data_jsonb`` its parse, which PostgreSQL keeps
beside it and the forms read (``pension_shared.schema.PARSED_DATA``), ``events.type`` its full
type). ``apply`` stays the definition of the read model; each service's tests hold the form
equal to it, row for row.

The rebuild runs in the caller's transaction, as the Python path does:

1. The read models' tables are emptied with TRUNCATE, which holds an ACCESS EXCLUSIVE lock on
   each until the transaction ends. Readers and writers of the read models wait for the rebuild
   (seconds on a million events), then see all of it: never the old rows and the new mixed, nor
   an empty table (in READ COMMITTED, each statement's snapshot is taken once it has its lock).
   A command appending meanwhile waits at its projection write, so its event is either visible
   to every statement of the rebuild or applied after it, to the rebuilt rows.
2. Their indexes, primary keys and unique constraints included, are dropped, and made again
   from the catalog's own definitions once every form has run: one sort per index instead of an
   index entry per inserted row, under the names the migrations gave them.
3. The forms run on two connections at once: reading the events and their fields is most of
   the work, and it is done by one backend per connection. Forms that read only the events and
   only ``Load`` rows are shared: their loads are taken by whichever connection is free, the
   caller's or a second one in its snapshot (``pg_export_snapshot``, taken once the tables are
   locked, so it sees what the first would see) whose rows are sent back with COPY. The second
   takes the most costly left, the caller the least costly: it writes the other's rows too.
   The caller's connection first gathers the events the ``Few`` statements read (of rare types:
   registrations, voidings, decisions), one read of the ledger for them all, into a temporary
   table (the role needs PostgreSQL's TEMPORARY privilege on the database, every role's by
   default), and runs the forms that are not shared; the second connection meanwhile counts the
   stored event types, then takes loads. Both read the ledger's index by type
   (``schema.TYPE_INDEX``) where it pays: the gather, only the blocks holding those events; the
   count, the index alone (the table's blocks known visible to all, as vacuum leaves them). Each
   would otherwise read the whole table: on the bench's million tax events, alone, 0.19 s rather
   than 0.57 s, and 0.05 s rather than 0.38 s. A load whose every row comes from one event alone
   (``per_event``) is taken in parts, each reading the events of one range of the table's
   blocks, the last ranges the smallest: one large load would otherwise keep one backend busy
   long after the other is done. Before each load it takes, the caller writes the rows of those
   the second connection has finished, so that it is not left with all of them to write once
   that one is done; before, not after: a load taken and then kept waiting behind those writes
   could be the one the second connection, with none left to take, would have run meanwhile.
   Then the forms that read tables other projections just rebuilt (``uses``) run, in projection
   order, each form's ``after`` steps (which read tables its own loads made) in the same order.
   Forms that read only the events do not depend on each other, so their order does not matter.

Why TRUNCATE rather than DELETE, and why not new tables swapped in: DELETE leaves every old row
in the heap and in the indexes until a vacuum (the index builds read them all again, and the
table is twice its size), while TRUNCATE gives each table a new, empty file; and it keeps the
tables the migrations made, with their grants, comments and names, where swapped-in tables would
need each of those made again. Its price, besides readers waiting: TRUNCATE is not MVCC-safe, so
a REPEATABLE READ or SERIALIZABLE transaction that began before the rebuild committed and reads a
rebuilt table only afterwards sees it empty (the services read in READ COMMITTED).

The rebuild is set-based only when every projection of the store has a form, and every form
reads the ledger as it is stored: no upcaster registered from a type it reads, and no stored
version of one of its events' names other than those it reads (projections match events by name,
so the Python path would fold such a version, which the SQL does not know). Otherwise the whole
rebuild takes the Python path, since projections may write each other's rows (the account
service's withdrawals projection sets participants' status), which only their order keeps right.
SQLite always takes the Python path."""

from __future__ import annotations

import itertools
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import EventType, Upcasters
from pension_shared.projection_batch import copying, insert_many


_EVENTS = re.compile(r"\bevents\b")
_WITH = re.compile(r"\s*WITH(\s+RECURSIVE)?\s", re.IGNORECASE)


def _with_events(events: str, statement: str) -> str:
    """``statement`` in which ``events`` names the rows of the query ``events`` (a common table
    expression, which PostgreSQL folds into the statement), put first in the statement's own
    WITH list if it has one. Inside ``events`` itself, the name is still the table's."""
    head, own = f"events AS NOT MATERIALIZED ({events})", _WITH.match(statement)
    return f"WITH{own.group(1) or ''} {head}, {statement[own.end():]}" if own else f"WITH {head} {statement}"


Tid = tuple[int, int]
"""Where a row is stored: its block, and its place in the block (PostgreSQL's ``ctid``)."""


@dataclass(frozen=True)
class Load:
    """Every row of ``table``: a query over the events giving the table's columns in order, or a
    function of a connection returning the rows (a fold done in Python)."""

    table: sa.Table
    rows: str | Callable[[Connection], Iterable[Mapping[str, Any]]]
    per_event: bool = False
    """For a query whose every row comes from one event alone (no fold across events: the
    ``events`` table named once): the load is then taken in parts, which the two connections
    share. In each, ``events`` names the events of a range of the table's blocks (a common table
    expression of that name, which PostgreSQL folds into the query: a scan of those blocks
    alone), so each part reads only its own events."""

    def __post_init__(self) -> None:
        if self.per_event and not (isinstance(self.rows, str) and len(_EVENTS.findall(self.rows)) == 1):
            raise ValueError("a load divided by event must be a query naming the events once")

    def parts(self, cuts: Sequence[Tid]) -> tuple[Load, ...]:
        """The loads that together give its rows: itself, or one per range of the events' places
        between the cuts (increasing), the first and the last open-ended, so that every stored
        event is in exactly one, wherever it is stored."""
        if not self.per_event or not cuts:
            return (self,)
        bounds = [None, *cuts, None]
        return tuple(Load(self.table, _with_events("SELECT * FROM events WHERE " + " AND ".join(
            f"ctid {op} '({at[0]},{at[1]})'" for op, at in ((">=", low), ("<", high)) if at is not None), self.rows))
            for low, high in zip(bounds, bounds[1:]))


@dataclass(frozen=True)
class Few:
    """A statement reading the events of a few types only (one per participant, or the rare
    changes to rows a load made), not a load, run where a statement would be. In it, ``events``
    names the events of the types every such statement of the rebuild names, gathered once by the
    caller's connection before anything else: one scan of the ledger rather than one for each
    statement. A statement may load a table of its own from them: the form is then run by the
    caller's connection, with the gathered events, while the second one takes loads."""

    statement: str


Step = str | Load | Few
"""A ``Load``, a ``Few``, or a statement given to the driver as it is (with no parameters: a
literal ``%`` is written ``%%``)."""

_TYPE_LITERAL = re.compile(r"'(cn\.pension\.[^']+)'")


@dataclass(frozen=True)
class SetBased:
    """A projection's read model computed by PostgreSQL from the stored events."""

    reads: frozenset[str]
    """The event types (with their version) whose stored data the steps fold."""
    steps: tuple[Step, ...]
    """Run in order on the emptied tables, their indexes dropped."""
    uses: tuple[sa.Table, ...] = field(default=())
    """Tables of projections before this one in the store that the steps read, rebuilt first."""
    after: tuple[Step, ...] = field(default=())
    """Run on the caller's connection once every form's loads are in, in projection order with
    the forms that ``use`` tables: they may read what this form's steps loaded, and the tables of
    the projections before it. A fold that needs only a few of the events a load reads anyway
    (the last of each stream's, say) finds them there, instead of reading them all again."""

    def __post_init__(self) -> None:
        named = {t for step in (*self.steps, *self.after) for t in _named(step)}
        if not named <= self.reads:
            raise ValueError(f"the SQL reads event types it does not declare: {sorted(named - self.reads)}")

    @property
    def names(self) -> frozenset[str]:
        """The names of the events it reads (projections match events by name)."""
        return frozenset(EventType.parse(type_).name for type_ in self.reads)

    @property
    def movable(self) -> bool:
        """Whether it may run on a second connection: it reads only the events, writes only rows."""
        return not self.uses and all(isinstance(step, Load) for step in self.steps)


def rebuild_set_based(conn: Connection, projections: Sequence, upcasters: Upcasters) -> int | None:
    """Rebuild every projection's tables from zero with their set-based forms, in the caller's
    transaction; the number of events in the ledger, or None (nothing done) when the rebuild must
    take the Python path."""
    if conn.dialect.name != "postgresql" or not projections:
        return None
    forms = [getattr(projection, "set_based", None) for projection in projections]
    if any(form is None for form in forms) or not _uses_rebuilt_tables(projections, forms):
        return None
    if any(_name(type_) in form.names for form in forms for type_ in upcasters.upcast_types()):
        return None
    fixed = [form for form in forms if not form.uses and not form.movable]
    loads = _Shared(_largest_first([(step, form) for form in forms if form.movable for step in form.steps],
                                   _estimated_types(conn), _cuts(conn)))
    quote = conn.dialect.identifier_preparer.format_table
    tables = ", ".join(quote(table) for table in _tables_of(projections))
    conn.exec_driver_sql(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
    # The second connection's snapshot, taken once the tables are locked (before the savepoint:
    # none is exported from a subtransaction), sees what this one sees from now on. Which
    # versions the ledger holds is counted there meanwhile: a form that does not read them all
    # undoes everything from the savepoint on.
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one() if loads else None
    with conn.begin_nested() as attempt:
        for setting in _SETTINGS:
            conn.exec_driver_sql(setting)
        conn.exec_driver_sql(f"TRUNCATE {tables}")
        rebuild_indexes = [ddl for table in _tables_of(projections) for ddl in _drop_indexes(conn, table)]
        with _Beside(conn, loads, snapshot) as other:
            if (few := _few_events(forms)) is not None:
                conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {_FEW} ON COMMIT DROP AS {few}")
            for form in fixed:
                _run(conn, form.steps)
            while True:
                other.write_finished(conn)
                if (load := loads.take(least=True)) is None:
                    break
                _run(conn, (load,))
        if not all(_reads_as_stored(form, other.stored) for form in forms):
            attempt.rollback()
            return None
        other.write_finished(conn)
        for form in forms:
            if form.uses:
                _run(conn, form.steps)
            _run(conn, form.after)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_FEW}")
        for ddl in rebuild_indexes:
            conn.exec_driver_sql(ddl)
    return sum(other.stored.values())


def _stored_types(conn: Connection) -> dict[str, int]:
    return dict(conn.exec_driver_sql("SELECT type, count(*) FROM events GROUP BY type").all())


def _estimated_types(conn: Connection) -> dict[str, int]:
    """How many events of each type the planner's statistics say the ledger holds (none if the
    events were never analysed)."""
    row = conn.exec_driver_sql(
        "SELECT CAST(CAST(s.most_common_vals AS text) AS text[]), s.most_common_freqs, c.reltuples "
        "FROM pg_stats s JOIN pg_class c ON c.oid = CAST('events' AS regclass) "
        "WHERE s.schemaname = current_schema() AND s.tablename = 'events' AND s.attname = 'type'"
    ).one_or_none()
    if row is None or row[0] is None:
        return {}
    types, frequencies, events = row
    return {type_: int(frequency * max(events, 0)) for type_, frequency in zip(types, frequencies)}

# For this transaction only: the sorts of the folds and of the index builds in memory.
_SETTINGS = ("SET LOCAL work_mem = '256MB'", "SET LOCAL maintenance_work_mem = '512MB'", "SET LOCAL jit = off")


def _named(step: Step) -> list[str]:
    """The event types its SQL names."""
    sql = step if isinstance(step, str) else step.statement if isinstance(step, Few) else step.rows
    return _TYPE_LITERAL.findall(sql) if isinstance(sql, str) else []


_FEW = "pg_temp.rebuild_few_events"


def _few_events(forms: Sequence[SetBased]) -> str | None:
    """The query of the events every ``Few`` statement of the forms reads (None without any)."""
    types = sorted({t for form in forms for step in (*form.steps, *form.after) if isinstance(step, Few)
                    for t in _named(step)})
    listed = ", ".join(f"'{t}'" for t in types)
    return f"SELECT * FROM events WHERE type IN ({listed})" if types else None


def _run(conn: Connection, steps: Iterable[Step]) -> None:
    for step in steps:
        if isinstance(step, str):
            conn.exec_driver_sql(step)
        elif isinstance(step, Few):
            conn.exec_driver_sql(_with_events(f"SELECT * FROM {_FEW}", step.statement))
        elif isinstance(step.rows, str):
            conn.exec_driver_sql(f"INSERT INTO {_columns(conn, step.table)} {step.rows}")
        else:
            insert_many(conn, step.table, list(step.rows(conn)))


_SHARES = (4, 4, 3, 3, 2, 2, 1, 1)
"""The shares of the events' blocks a load divided by event is taken in, largest first: few
enough parts that each costs little more than reading its events, and the last ones small, so
that the connection done first does not wait long for the other's last part."""


def _cuts(conn: Connection) -> list[Tid]:
    """The starts of blocks that divide the events' table into ranges of ``_SHARES`` of its
    blocks, in that order (none for a table of fewer blocks than the shares add up to)."""
    blocks = conn.exec_driver_sql(
        "SELECT pg_relation_size('events') / CAST(current_setting('block_size') AS integer)").scalar_one()
    total = sum(_SHARES)
    if blocks < total:
        return []
    return [(blocks * upto // total, 0) for upto in itertools.accumulate(_SHARES[:-1])]


def _shares(parts: int) -> Sequence[int]:
    """How the cost of a load divided into so many parts is shared among them."""
    return _SHARES if parts == len(_SHARES) else (1,) * parts


def _largest_first(loads: list[tuple[Load, SetBased]], stored: Mapping[str, int], cuts: Sequence[Tid]) -> list[Load]:
    """The loads from the most costly to the least, as estimated: a scan of the events (about as
    much as reading the stored parse of a third of them) and the reading of those they read (the
    types its SQL names, or all its form's for a load done in Python). A load divided by event is
    taken in its parts, each scanning and reading its range's share. Only the order in which the
    loads are taken depends on these weights: against a tenth (measured when the forms parsed the
    events' text), the tax rebuild of 1M events takes 6.4 s rather than 7.1 s."""
    scan = max(sum(stored.values()) // 3, 1)
    costs: list[tuple[int, Load]] = []
    for load, form in loads:
        types = set(_named(load)) if isinstance(load.rows, str) else form.reads
        parsing = sum(stored.get(type_, 0) for type_ in types)
        parts = load.parts(cuts)
        shares = _shares(len(parts))
        costs.extend(((scan + parsing) * share // sum(shares), part) for share, part in zip(shares, parts))
    return [load for _, load in sorted(costs, key=lambda pair: -pair[0])]


class _Shared:
    """Loads taken by whichever connection is free first: neither waits on the other while work is
    left, however far the estimates are from what each load costs. The second connection takes
    them from the most costly down, the caller from the least costly up: the caller also writes
    every row the other makes, so each load it takes keeps those waiting, and the least costly
    keep them the least (on the tax ledger's million events, the caller is the one still busy
    at the end, writing, while the other has nothing left to take)."""

    def __init__(self, loads: Sequence[Load]) -> None:
        self._loads, self._lock = deque(loads), threading.Lock()
        self.tables = {load.table for load in loads}

    def __bool__(self) -> bool:
        return bool(self._loads)

    def take(self, *, least: bool = False) -> Load | None:
        """The most costly load left, or with ``least`` the least costly; None once all are taken."""
        with self._lock:
            return (self._loads.pop() if least else self._loads.popleft()) if self._loads else None

    def drop(self) -> None:
        """None is left to take (the rebuild failed)."""
        with self._lock:
            self._loads.clear()


Write = Callable[[Connection], None]


class _Beside:
    """Runs shared loads on a second connection, in a thread, in the caller's snapshot. There it
    first counts the stored event types (``stored``, once out of the ``with``): that scan of the
    ledger is not the caller's to make. The rows of each load it has finished wait in memory
    until ``write_finished`` writes them into the caller's transaction (COPY). Without loads there
    is no second connection: the caller counts itself."""

    def __init__(self, conn: Connection, loads: _Shared, snapshot: str | None) -> None:
        self._conn, self._loads, self._snapshot = conn, loads, snapshot
        self.stored: dict[str, int] = {}
        self._written: deque[Write] = deque()  # appended by the thread, taken by the caller
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "_Beside":
        if not self._loads:
            self.stored = _stored_types(self._conn)
        else:
            columns = {table: _columns(self._conn, table) for table in self._loads.tables}
            types = {table: _types(self._conn, table) for table in self._loads.tables}
            self._thread = threading.Thread(target=self._fetch, args=(self._snapshot, columns, types),
                                            name="rebuild-beside", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._loads.drop()
        if self._thread is not None:
            self._thread.join()
        if self._failed is not None and exc[0] is None:
            raise self._failed

    def write_finished(self, conn: Connection) -> None:
        """Write the rows of the loads finished so far, on the caller's connection."""
        while self._written:
            self._written.popleft()(conn)

    def _fetch(self, snapshot: str, columns: dict, types: dict) -> None:
        try:
            with self._conn.engine.connect().execution_options(isolation_level="REPEATABLE READ") as other:
                other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                for setting in _SETTINGS:
                    other.exec_driver_sql(setting)
                # Counted before the loads, not after: the caller would wait for the count alone.
                self.stored = _stored_types(other)
                for load in iter(self._loads.take, None):
                    if isinstance(load.rows, str):
                        self._written.append(_copy_in(columns[load.table], _copied_out(other, load.rows, types[load.table])))
                    else:
                        self._written.append(_insert_in(load.table, list(load.rows(other))))
                other.rollback()
        except BaseException as failure:  # noqa: BLE001 - raised again in the caller's thread
            self._loads.drop()
            self._failed = failure


def _copy_out(conn: Connection, query: str) -> bytearray:
    """The query's rows in COPY's binary format, in one buffer: the server sends each row in a
    message of its own, and keeping them as they come would leave a write per row to the caller
    (on the tax ledger's million events, 0.8 µs each of the client's CPU, which the two
    connections' backends need)."""
    data = bytearray()
    with copying(conn, f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            data += chunk
    return data


def _copied_out(conn: Connection, query: str, types: Sequence[str]) -> bytearray:
    """The query's rows in COPY's binary format, each column cast to the table's type."""
    cast = ", ".join(f"CAST(c{i} AS {type_})" for i, type_ in enumerate(types))
    named = ", ".join(f"c{i}" for i in range(len(types)))
    return _copy_out(conn, f"SELECT {cast} FROM ({query}) AS rows ({named})")


def _insert_in(table: sa.Table, rows: list[Mapping[str, Any]]) -> Write:
    return lambda conn: insert_many(conn, table, rows)


def _copy_in(columns: str, data: bytearray) -> Write:
    def write(conn: Connection) -> None:
        with copying(conn, f"COPY {columns} FROM STDIN (FORMAT binary)") as copy:
            copy.write(memoryview(data))  # sent in pieces of psycopg's size, none copied
    return write


def _columns(conn: Connection, table: sa.Table) -> str:
    """``table (column, ...)``, quoted."""
    quote = conn.dialect.identifier_preparer
    return f"{quote.format_table(table)} ({', '.join(quote.quote(c.name) for c in table.columns)})"


def _types(conn: Connection, table: sa.Table) -> list[str]:
    """Each column's type, without its length: a value too long is refused on the way in, as an
    INSERT refuses it."""
    stored = dict(conn.execute(_COLUMN_TYPES, {"table": conn.dialect.identifier_preparer.format_table(table)}).all())
    return [stored[c.name] for c in table.columns]


_COLUMN_TYPES = sa.text(
    "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
    "WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped"
)


def _uses_rebuilt_tables(projections: Sequence, forms: Sequence[SetBased]) -> bool:
    rebuilt: set[sa.Table] = set()
    for projection, form in zip(projections, forms):
        if not set(form.uses) <= rebuilt:
            return False
        rebuilt.update(projection.tables)
    return True


def _reads_as_stored(form: SetBased, stored: Mapping[str, int]) -> bool:
    """No stored version of one of its events' names other than those it reads."""
    return all(type_ in form.reads for type_ in stored if _name(type_) in form.names)


def _name(type_: str) -> str | None:
    try:
        return EventType.parse(type_).name
    except ValueError:
        return None


def _tables_of(projections: Sequence) -> list[sa.Table]:
    tables: list[sa.Table] = []
    for projection in projections:
        tables.extend(table for table in projection.tables if table not in tables)
    return tables


def _drop_indexes(conn: Connection, table: sa.Table) -> list[str]:
    """Drop the table's indexes and the primary key and unique constraints they back; the DDL
    that makes them again, as the catalog defines them (primary key first)."""
    name = conn.dialect.identifier_preparer.format_table(table)
    quote = conn.dialect.identifier_preparer.quote
    constraints = conn.execute(_CONSTRAINTS, {"table": name}).all()
    indexes = conn.execute(_INDEXES, {"table": name}).all()
    for index, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {index}")
    if constraints:
        conn.exec_driver_sql(f"ALTER TABLE {name} " + ", ".join(f"DROP CONSTRAINT {quote(c)}" for c, _ in constraints))
    return ([f"ALTER TABLE {name} ADD CONSTRAINT {quote(c)} {definition}" for c, definition in constraints]
            + [definition for _, definition in indexes])


_CONSTRAINTS = sa.text(
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = CAST(:table AS regclass) AND contype IN ('p', 'u') ORDER BY contype, conname"
)
_INDEXES = sa.text(
    "SELECT CAST(CAST(i.indexrelid AS regclass) AS text), pg_get_indexdef(i.indexrelid) FROM pg_index i "
    "WHERE i.indrelid = CAST(:table AS regclass) "
    "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid) "
    "ORDER BY 1"
)
