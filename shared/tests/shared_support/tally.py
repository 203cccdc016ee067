"""A toy event-sourced service, "tally", that exercises every mechanic without any domain.

Each subject (think: a participant) has a stream ``tally-<subject>`` of ``Added {amount}``
events. The producer keeps an inline projection of totals per subject (``tally_totals``); a
consumer of the tally topic keeps what it received per subject (``tally_received``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.db import create_engine
from pension_shared.envelope import Envelope, Upcasters
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.messaging import OutgoingRecord
from pension_shared.migrations import upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = "tally"
ADDED = "cn.pension.tally.Added.v1"

_metadata = sa.MetaData()

tally_totals = sa.Table(
    "tally_totals",
    _metadata,
    sa.Column("subject", sa.String(64), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("last_event_id", sa.String(64), nullable=False),
)

tally_received = sa.Table(
    "tally_received",
    _metadata,
    sa.Column("subject", sa.String(64), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
)


def migrate(url: str) -> None:
    upgrade(MIGRATIONS, url)


def stream_of(subject: str) -> str:
    return f"tally-{subject}"


def added(subject: str, amount: int) -> NewEvent:
    return NewEvent("Added", {"amount": amount}, subject)


def meta(correlation_id: str | None = None, causation_id: str | None = None) -> Metadata:
    return Metadata(
        time=datetime(2025, 8, 15, 9, 0, tzinfo=timezone.utc).isoformat(),
        correlation_id=correlation_id, causation_id=causation_id,
    )


class TallyProjection:
    """Totals per subject; reads the newest schema of Added (through upcasters, if any)."""

    name = "tally_totals"
    tables: Sequence[sa.Table] = (tally_totals,)

    def __init__(self, amount_of: Callable[[Envelope], int] | None = None, handles: str = ADDED) -> None:
        self._amount_of = amount_of or (lambda e: int(e.data["amount"]))
        self._handles = handles

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.type != self._handles:
            return
        amount = self._amount_of(event)
        updated = conn.execute(
            tally_totals.update()
            .where(tally_totals.c.subject == event.subject)
            .values(total=tally_totals.c.total + amount, events=tally_totals.c.events + 1, last_event_id=event.id)
        )
        if updated.rowcount == 0:
            conn.execute(tally_totals.insert().values(
                subject=event.subject, total=amount, events=1, last_event_id=event.id,
            ))


def receive(conn: Connection, event: Envelope) -> None:
    """The consumer's policy for Added: count what arrived, per subject."""
    amount = int(event.data["amount"])
    updated = conn.execute(
        tally_received.update()
        .where(tally_received.c.subject == event.subject)
        .values(total=tally_received.c.total + amount, events=tally_received.c.events + 1)
    )
    if updated.rowcount == 0:
        conn.execute(tally_received.insert().values(subject=event.subject, total=amount, events=1))


def snapshot(conn: Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]


def received(conn: Connection) -> dict[str, tuple[int, int]]:
    return {r.subject: (r.total, r.events) for r in conn.execute(sa.select(tally_received))}


class TallyService:
    """The producer side: an event store with the tally projection on its own database."""

    def __init__(self, url: str, *, topic: str = "pension.tally", upcasters: Upcasters | None = None,
                 projection: TallyProjection | None = None) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.store = EventStore(
            service=SERVICE, topic=topic, projections=[projection or TallyProjection()], upcasters=upcasters,
        )

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def add(self, subject: str, amount: int, *, times: int = 1) -> list[Envelope]:
        """One command: load the stream, decide, append at the loaded version, commit."""
        with self.engine.begin() as conn:
            stream = self.store.load(conn, stream_of(subject))
            return self.store.append(
                conn, stream.stream_id, stream.version, [added(subject, amount) for _ in range(times)], meta(),
            )

    def totals(self) -> dict[str, tuple[int, int]]:
        with self.engine.connect() as conn:
            return {r.subject: (r.total, r.events) for r in conn.execute(sa.select(tally_totals))}

    def count(self, table: sa.Table | str) -> int:
        name = table if isinstance(table, str) else table.name
        with self.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class RecordingPublisher:
    """An in-memory log that acknowledges everything (for relay tests without a broker)."""

    records: list[OutgoingRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        with self._lock:
            self.records.extend(records)

    def close(self) -> None:
        pass
