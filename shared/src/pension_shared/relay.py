"""The outbox relay: publishes committed outbox rows to the service's topic, at least once.

It never tracks a high-water mark of ids: rows are taken by "not yet published", in id order,
so a row whose transaction commits after a later id has been published is still picked up
(insert order and commit order differ). A relay killed between publishing and marking
publishes those rows again; consumers deduplicate by event id.

On PostgreSQL an idle relay does not poll: every append notifies ``OUTBOX_CHANNEL`` at its
commit, and the relay sleeps until told (or a second has passed, in case a notification was
lost with its connection). After publishing it waits a moment before looking again, so that
rows arriving under load go out in batches."""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pension_shared.db import bound_list, in_list
from pension_shared.lease import Lease
from pension_shared.ledger import OUTBOX_CHANNEL
from pension_shared.messaging import OutgoingRecord, Publisher
from pension_shared.read_positions import POSITION_HEADER
from pension_shared.schema import events, outbox

log = logging.getLogger(__name__)


_UNPUBLISHED = (
    sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, events.c.position)
    .select_from(outbox.outerjoin(events, events.c.event_id == outbox.c.event_id))
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
)
"""The rows to publish next, each with its event's position in the ledger, which the record
carries in its ``POSITION_HEADER`` (``pension_shared.positions``)."""


@functools.lru_cache(maxsize=None)
def _mark_published(rows: int) -> sa.Update:
    """``rows`` outbox rows, bound as ``ids`` (``bound_list``), marked published ``at``."""
    return outbox.update().where(in_list(outbox.c.id, "ids", rows)).values(published_at=sa.bindparam("at"))


def _marking(ids: Sequence[int]) -> tuple[sa.Update, dict]:
    rows, params = bound_list("ids", ids)
    return _mark_published(rows), {**params, "at": datetime.now(timezone.utc)}


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        after_publish: Callable[[Sequence[int]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._batch_size = batch_size
        self._after_publish = after_publish

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were published."""
        if self._engine.dialect.name != "postgresql":
            # SQLite: every transaction takes the write lock; never hold it while publishing.
            with self._engine.connect() as conn:
                rows = conn.execute(_UNPUBLISHED, {"limit": self._batch_size}).all()
                conn.rollback()
            ids = self._publish(rows)
            if ids:
                with self._engine.begin() as conn:
                    conn.execute(*_marking(ids))
            return len(ids)
        # PostgreSQL: one connection for the batch, in autocommit (the read needs no transaction
        # of its own, the marking is one statement): a round trip each instead of three.
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            ids = self._publish(conn.execute(_UNPUBLISHED, {"limit": self._batch_size}).all())
            if ids:
                conn.execute(*_marking(ids))
        return len(ids)

    def _publish(self, rows: Sequence[sa.Row]) -> list[int]:
        if not rows:
            return []
        # Unpacked: reading a row's columns by name costs about 1 µs each.
        self._publisher.publish([
            OutgoingRecord(topic, key, bytes(payload), ((POSITION_HEADER, b"%d" % position),) if position else ())
            for _, topic, key, payload, position in rows
        ])
        ids = [row[0] for row in rows]
        if self._after_publish is not None:
            self._after_publish(ids)
        return ids

    def backlog(self) -> int:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()

    def run(
        self, stop: threading.Event, *, lease: Lease | None = None, idle_s: float = 0.1,
        error_backoff_s: float = 1.0, standby_s: float = 1.0, quiet_s: float = 1.0,
    ) -> None:
        """Relay until stopped. With a ``lease``, only while holding it: a standby replica polls
        for the lease and takes over when the active one's session ends. After a batch smaller
        than ``batch_size`` the relay waits ``idle_s``; after finding nothing, until an append
        notifies it (PostgreSQL) or ``quiet_s`` has passed (on SQLite: ``idle_s``)."""
        wake = _Notifications(self._engine) if self._engine.dialect.name == "postgresql" else None
        try:
            self._run(stop, lease, idle_s, error_backoff_s, standby_s, quiet_s, wake)
        finally:
            if wake is not None:
                wake.close()
            if lease is not None:
                lease.release()

    def _run(self, stop: threading.Event, lease: Lease | None, idle_s: float, error_backoff_s: float,
             standby_s: float, quiet_s: float, wake: "_Notifications | None") -> None:
        while not stop.is_set():
            try:
                if lease is not None and not lease.acquire():
                    stop.wait(standby_s)
                    continue
                if wake is not None:
                    wake.listen()  # before looking: a row committed after the look wakes the wait
                published = self.relay_once()
            except Exception:  # the relay must outlive a broker or database outage
                log.exception("outbox relay failed; retrying")
                stop.wait(error_backoff_s)
                continue
            if published >= self._batch_size:
                continue
            if published or wake is None:
                stop.wait(idle_s)
            elif not wake.wait(quiet_s, stop):
                stop.wait(idle_s)  # the listening connection failed: poll until it is back


_STOP_LOOK_S = 1.0
"""How often an idle relay, waiting for a notification, looks whether it was told to stop: as
often as it looks for rows at the default ``quiet_s``, so an idle relay wakes no more often."""


class _Notifications:
    """A connection of its own listening on ``OUTBOX_CHANNEL``: the relay sleeps on it until an
    append commits. Losing it costs nothing but latency: the relay then polls until it is back."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = None  # the driver's (psycopg) connection, detached from the pool

    def listen(self) -> None:
        if self._conn is not None:
            return
        pooled = self._engine.raw_connection()
        conn = pooled.driver_connection
        pooled.detach()  # never returned to the pool: it stays in LISTEN for good
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        except Exception:
            pooled.close()
            raise
        self._conn = conn

    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """Wait until notified, ``timeout_s`` passed or ``stop`` set, looking at ``stop`` every
        ``_STOP_LOOK_S`` (a relay told to stop while idle would otherwise sleep out ``quiet_s``);
        ``False`` if the connection failed."""
        if self._conn is None:
            return False
        deadline = time.monotonic() + timeout_s
        try:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if sum(1 for _ in self._conn.notifies(timeout=min(left, _STOP_LOOK_S), stop_after=1)):
                    for _ in self._conn.notifies(timeout=0):  # the others already received: one look covers them
                        pass
                    break
            return True
        except Exception:
            log.warning("outbox relay: the notification connection failed; polling until it is back")
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already gone
                pass
            self._conn = None
