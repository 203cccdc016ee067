"""Read-your-writes across services, on the database (``pension_shared.positions`` says what is
promised): the consumer records how far it has applied each other service's ledger, and a read
given a position waits until it has got that far."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pension_shared.db import dialect_insert
from pension_shared.messaging import IncomingRecord
from pension_shared.positions import ANY_PARTICIPANT, of
from pension_shared.schema import read_positions

POSITION_HEADER = "position"
"""The header in which the relay sends each record's position in its ledger."""

WAIT_S = 5.0
"""How long a read waits, at most, for the reader to apply what it was given the position of."""
LOOK_EVERY_S = 0.02


def highest_positions(records: Iterable[IncomingRecord], ledgers: Mapping[str, str]) -> dict[tuple[str, str], int]:
    """The highest position among the records of each ledger (``ledgers``: topic -> ledger) for
    each participant (the record's key) and for any (``ANY_PARTICIPANT``)."""
    highest: dict[tuple[str, str], int] = {}
    for record in records:
        ledger = ledgers.get(record.topic)
        position = _position(record) if ledger is not None else None
        if position is None:
            continue
        for participant in (record.key, ANY_PARTICIPANT) if record.key else (ANY_PARTICIPANT,):
            if position > highest.get((ledger, participant), 0):
                highest[(ledger, participant)] = position
    return highest


def raised(positions: Mapping[tuple[str, str], int], higher: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """``positions`` with each of ``higher`` that is higher."""
    merged = dict(positions)
    for key, position in higher.items():
        if position > merged.get(key, 0):
            merged[key] = position
    return merged


def _position(record: IncomingRecord) -> int | None:
    for name, value in record.headers:
        if name == POSITION_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def record_positions(conn: Connection, highest: Mapping[tuple[str, str], int]) -> None:
    """Raise each (ledger, participant)'s position to the one given, never lower it (records of
    other partitions may come back earlier ones)."""
    if not highest:
        return
    # In a fixed order: two consumers of one group raising the same rows never wait on each other
    # in a cycle.
    rows = sorted(highest.items())
    if conn.dialect.name == "postgresql":
        # One statement with three arrays: as a list of parameter sets, SQLAlchemy spent 2 ms of
        # the consumer's CPU on a batch of 100 participants, against 0.3 ms for the batch itself.
        conn.exec_driver_sql(_RAISE_ALL, ([ledger for (ledger, _), _ in rows], [who for (_, who), _ in rows],
                                          [position for _, position in rows]))
        return
    conn.execute(_raise_one(conn.dialect.name), [
        {"ledger": ledger, "participant_id": participant, "position": position}
        for (ledger, participant), position in rows
    ])


_RAISE_ALL = (
    "INSERT INTO read_positions (ledger, participant_id, position) "
    "SELECT * FROM unnest(CAST(%s AS text[]), CAST(%s AS text[]), CAST(%s AS bigint[])) "
    "ON CONFLICT (ledger, participant_id) DO UPDATE SET position = GREATEST(read_positions.position, excluded.position)"
)


@functools.lru_cache(maxsize=None)
def _raise_one(dialect: str) -> Any:
    statement = dialect_insert(dialect, read_positions)
    return statement.on_conflict_do_update(
        index_elements=["ledger", "participant_id"],
        set_={"position": sa.func.max(read_positions.c.position, statement.excluded.position)},
    )


def applied_position(conn: Connection, ledger: str, participant_id: str) -> int:
    return conn.execute(
        sa.select(read_positions.c.position).where(
            read_positions.c.ledger == ledger, read_positions.c.participant_id == participant_id)
    ).scalar_one_or_none() or 0


def wait_until_applied(
    engine: Engine, own: str, reads: Iterable[str], min_position: int | None, participant_id: str | None = None,
    *, wait_s: float = WAIT_S, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until this service (``own``, reading the ledgers ``reads``) has applied the events of
    the ledger that ``min_position`` (a position a write returned) names up to it, of this
    participant (or of any, without one); at most ``wait_s``. Whether it has: a position of its
    own ledger, of a ledger it does not read, or naming none, needs no wait."""
    if min_position is None:
        return True
    named = of(min_position)
    if named is None or named.ledger == own or named.ledger not in set(reads):
        return True
    who = participant_id or ANY_PARTICIPANT
    deadline = clock() + wait_s
    while True:
        with engine.connect() as conn:
            if applied_position(conn, named.ledger, who) >= named.position:
                return True
        if clock() >= deadline:
            return False
        sleep(LOOK_EVERY_S)
