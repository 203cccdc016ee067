"""Rebuilding read models from zero on PostgreSQL, set-based: each read model computed by SQL
straight from the ``events`` table, loaded into tables without indexes, the indexes built after.

A projection may carry a set-based form (``set_based``, a ``SetBased``): the same fold as its
``apply`` / ``apply_batch``, written as SQL over the stored events (``events.data`` is the
canonical JSON text of the event's data, ``events.type`` its full type). ``apply`` stays the
definition of the read model; each service's tests hold the form equal to it, row for row.

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
3. The forms run in projection order; a form may read tables that projections before it in the
   store have just rebuilt (``uses``).

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

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import EventType, Upcasters

Step = str | Callable[[Connection], None]
"""SQL given to the driver as it is (with no parameters: a literal ``%`` is written ``%%``), or a
function of the connection for a step done in Python."""

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

    def __post_init__(self) -> None:
        named = {t for step in self.steps if isinstance(step, str) for t in _TYPE_LITERAL.findall(step)}
        if not named <= self.reads:
            raise ValueError(f"the SQL reads event types it does not declare: {sorted(named - self.reads)}")


def rebuild_set_based(conn: Connection, projections: Sequence, upcasters: Upcasters) -> int | None:
    """Rebuild every projection's tables from zero with their set-based forms, in the caller's
    transaction; the number of events in the ledger, or None (nothing done) when the rebuild must
    take the Python path."""
    if conn.dialect.name != "postgresql" or not projections:
        return None
    forms = [getattr(projection, "set_based", None) for projection in projections]
    if any(form is None for form in forms) or not _uses_rebuilt_tables(projections, forms):
        return None
    stored = dict(conn.execute(_STORED_TYPES).all())
    if not all(_reads_as_stored(form, stored, upcasters) for form in forms):
        return None
    tables = _tables_of(projections)
    for setting in _SETTINGS:
        conn.exec_driver_sql(setting)
    quote = conn.dialect.identifier_preparer.format_table
    conn.exec_driver_sql(f"TRUNCATE {', '.join(quote(table) for table in tables)}")
    rebuild_indexes = [ddl for table in tables for ddl in _drop_indexes(conn, table)]
    for form in forms:
        for step in form.steps:
            if isinstance(step, str):
                conn.exec_driver_sql(step)
            else:
                step(conn)
    for ddl in rebuild_indexes:
        conn.exec_driver_sql(ddl)
    return sum(stored.values())


_STORED_TYPES = sa.text("SELECT type, count(*) FROM events GROUP BY type")

# For this transaction only: the sorts of the folds and of the index builds in memory.
_SETTINGS = ("SET LOCAL work_mem = '256MB'", "SET LOCAL maintenance_work_mem = '512MB'", "SET LOCAL jit = off")


def _uses_rebuilt_tables(projections: Sequence, forms: Sequence[SetBased]) -> bool:
    rebuilt: set[sa.Table] = set()
    for projection, form in zip(projections, forms):
        if not set(form.uses) <= rebuilt:
            return False
        rebuilt.update(projection.tables)
    return True


def _reads_as_stored(form: SetBased, stored: dict[str, int], upcasters: Upcasters) -> bool:
    names = {EventType.parse(type_).name for type_ in form.reads}
    if any(_name(type_) in names for type_ in upcasters.upcast_types()):
        return False
    return all(type_ in form.reads for type_ in stored if _name(type_) in names)


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
