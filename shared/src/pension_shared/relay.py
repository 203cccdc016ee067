"""The outbox relay: publishes committed outbox rows to the service's topic, at least once.

It never tracks a high-water mark of ids: rows are taken by "not yet published", in id order,
so a row whose transaction commits after a later id has been published is still picked up
(insert order and commit order differ). A relay killed between publishing and marking
publishes those rows again; consumers deduplicate by event id."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pension_shared.lease import Lease
from pension_shared.messaging import OutgoingRecord, Publisher
from pension_shared.schema import outbox

log = logging.getLogger(__name__)


_UNPUBLISHED = (
    sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
)
_MARK_PUBLISHED = (
    outbox.update().where(outbox.c.id.in_(sa.bindparam("ids", expanding=True))).values(published_at=sa.bindparam("at"))
)


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
                    conn.execute(_MARK_PUBLISHED, {"ids": ids, "at": datetime.now(timezone.utc)})
            return len(ids)
        # PostgreSQL: one connection for the batch, in autocommit (the read needs no transaction
        # of its own, the marking is one statement): a round trip each instead of three.
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            ids = self._publish(conn.execute(_UNPUBLISHED, {"limit": self._batch_size}).all())
            if ids:
                conn.execute(_MARK_PUBLISHED, {"ids": ids, "at": datetime.now(timezone.utc)})
        return len(ids)

    def _publish(self, rows: Sequence[sa.Row]) -> list[int]:
        if not rows:
            return []
        self._publisher.publish([OutgoingRecord(r.topic, r.key, bytes(r.payload)) for r in rows])
        ids = [r.id for r in rows]
        if self._after_publish is not None:
            self._after_publish(ids)
        return ids

    def backlog(self) -> int:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()

    def run(
        self, stop: threading.Event, *, lease: Lease | None = None, idle_s: float = 0.05,
        error_backoff_s: float = 1.0, standby_s: float = 1.0,
    ) -> None:
        """Relay until stopped. With a ``lease``, only while holding it: a standby replica polls
        for the lease and takes over when the active one's session ends."""
        try:
            self._run(stop, lease, idle_s, error_backoff_s, standby_s)
        finally:
            if lease is not None:
                lease.release()

    def _run(self, stop: threading.Event, lease: Lease | None, idle_s: float, error_backoff_s: float,
             standby_s: float) -> None:
        while not stop.is_set():
            try:
                if lease is not None and not lease.acquire():
                    stop.wait(standby_s)
                    continue
                published = self.relay_once()
            except Exception:  # the relay must outlive a broker or database outage
                log.exception("outbox relay failed; retrying")
                stop.wait(error_backoff_s)
                continue
            if published < self._batch_size:
                stop.wait(idle_s)
