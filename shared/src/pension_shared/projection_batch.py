"""Writing a batch of projected rows at once, for projections' ``apply_batch`` (used when a read
model is rebuilt from zero): a projection folds a batch of events into the final rows it
touches, in event order, and writes each row once, a statement per table rather than per event.

The row each event leads to is decided by the same code as in ``apply``; only the writing is
batched. A projection reads and writes only its own tables, so folding one projection's batch
before the next projection sees it changes nothing."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.db import bound_list, dialect_insert, in_list


class FoldedRows:
    """One table's rows as a batch of events leaves them: the rows the batch inserts, with every
    later change folded in, and the changes to rows that existed before it. Written with the
    changes first, so a change that came before its row's insertion touches nothing, as when
    applied one by one."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._key = [c.name for c in table.primary_key.columns]
        self._inserted: dict[tuple, dict[str, Any]] = {}
        self._again: list[dict[str, Any]] = []
        self._changed: dict[tuple, dict[str, Any]] = {}

    def insert(self, row: Mapping[str, Any]) -> None:
        key = tuple(row[k] for k in self._key)
        if key in self._inserted:
            self._again.append(dict(row))  # the database refuses it, as it would one by one
        else:
            self._inserted[key] = dict(row)

    def update(self, row: Mapping[str, Any]) -> None:
        """``row`` carries the primary key and the columns it changes."""
        key = tuple(row[k] for k in self._key)
        target = self._inserted.get(key)
        if target is not None:
            target.update(row)
        else:
            self._changed.setdefault(key, {}).update(row)

    def write(self, conn: Connection) -> None:
        update_many(conn, self.table, list(self._changed.values()))
        insert_many(conn, self.table, [*self._inserted.values(), *self._again])


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """All the rows at once: PostgreSQL's COPY when every column is a plain string, number,
    boolean or date (the values go to the server as they are), else one INSERT executed for many
    rows."""
    for columns, group in _by_columns(rows):
        if conn.dialect.name == "postgresql" and len(group) > 1 and all(_plain(table.c[name]) for name in columns):
            _copy(conn, table, columns, group)
        else:
            conn.execute(_insert(table), group)


def _copy(conn: Connection, table: sa.Table, columns: tuple[str, ...], rows: list[Mapping[str, Any]]) -> None:
    quote = conn.dialect.identifier_preparer
    with copying(conn, f"COPY {quote.format_table(table)} ({', '.join(quote.quote(name) for name in columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row.values()))


@contextmanager
def copying(conn: Connection, statement: str) -> Iterator[Any]:
    """A COPY statement on the connection's driver (psycopg's ``Copy``), its errors raised as any
    statement's are (IntegrityError, DataError, ...)."""
    import psycopg

    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            yield copy
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _plain(column: sa.Column) -> bool:
    return isinstance(column.type, (sa.String, sa.Integer, sa.Boolean, sa.Date)) and not isinstance(column.type, sa.Enum)


def upsert_many(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert each row, or overwrite the columns it carries where its primary key already exists
    (at most one row per key)."""
    for columns, group in _by_columns(rows):
        conn.execute(_upsert(conn.dialect.name, table, columns), group)


def update_many(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Overwrite the columns each row carries in the existing row with its primary key."""
    key = [c.name for c in table.primary_key.columns]
    for columns, group in _by_columns(rows):
        conn.execute(_update(table, columns), [
            {**{f"key_{k}": row[k] for k in key}, **{f"new_{n}": row[n] for n in columns if n not in key}}
            for row in group
        ])


def delete_many(conn: Connection, table: sa.Table, keys: Sequence[tuple]) -> None:
    """Delete the rows with these primary keys."""
    if keys:
        names = [c.name for c in table.primary_key.columns]
        conn.execute(_delete(table), [{f"key_{name}": value for name, value in zip(names, key)} for key in keys])


def existing_rows(conn: Connection, table: sa.Table, keys: Iterable[tuple]) -> dict[tuple, dict[str, Any]]:
    """The current rows with these primary keys, by key, in statements of 1,024 keys at most."""
    key_columns = list(table.primary_key.columns)
    wanted = list(dict.fromkeys(keys))
    found: dict[tuple, dict[str, Any]] = {}
    for start in range(0, len(wanted), 1024):
        chunk = wanted[start:start + 1024]
        size, params = bound_list("keys", [k[0] for k in chunk] if len(key_columns) == 1 else chunk)
        for row in conn.execute(_select_by_keys(table, size), params).mappings():
            found[tuple(row[c.name] for c in key_columns)] = dict(row)
    return found


def _by_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, ...], list[Mapping[str, Any]]]]:
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.items())


# The statements are built once per table and shape: building one (and its cache key) costs more
# Python than executing it when a projection writes a row per event.


@functools.lru_cache(maxsize=None)
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert()


@functools.lru_cache(maxsize=None)
def _upsert(dialect: str, table: sa.Table, columns: tuple[str, ...]) -> Any:
    key = [c.name for c in table.primary_key.columns]
    changed = [name for name in columns if name not in key]
    statement = dialect_insert(dialect, table)
    return (statement.on_conflict_do_update(index_elements=key, set_={n: statement.excluded[n] for n in changed})
            if changed else statement.on_conflict_do_nothing(index_elements=key))


@functools.lru_cache(maxsize=None)
def _update(table: sa.Table, columns: tuple[str, ...]) -> sa.Update:
    key = [c.name for c in table.primary_key.columns]
    return table.update().where(*(table.c[k] == sa.bindparam(f"key_{k}") for k in key)).values(
        {name: sa.bindparam(f"new_{name}") for name in columns if name not in key}
    )


@functools.lru_cache(maxsize=None)
def _delete(table: sa.Table) -> sa.Delete:
    return table.delete().where(*(c == sa.bindparam(f"key_{c.name}") for c in table.primary_key.columns))


@functools.lru_cache(maxsize=None)
def _select_by_keys(table: sa.Table, keys: int) -> sa.Select:
    """The rows of ``keys`` primary keys, bound as ``keys`` (``bound_list``)."""
    key_columns = list(table.primary_key.columns)
    key = key_columns[0] if len(key_columns) == 1 else sa.tuple_(*key_columns)
    return sa.select(table).where(in_list(key, "keys", keys))
