"""Leadership for work that must run in exactly one process at a time, such as a service's
outbox relay: several replicas may run, one is active, the others stand by and take over within
seconds when it dies.

On PostgreSQL the lease is a session-level advisory lock held on a dedicated connection: it is
released by the database itself when the holder's session ends (the process died, the machine
vanished, the connection broke), so there is nothing to expire or clean up. The holder checks
its connection before each batch and steps down as soon as it is lost. On SQLite (the embedded
default, one process) the lease is always held."""

from __future__ import annotations

import hashlib
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_BACKEND = sa.text("SELECT pg_backend_pid()")


class Lease:
    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._name = name
        self._key = lock_key(name)
        self._conn: Connection | None = None
        self._backend: int | None = None
        """The PostgreSQL backend (its pid) of the session that took the lock."""
        self._exclusive = engine.dialect.name == "postgresql"
        self._standing_by = False

    @property
    def held(self) -> bool:
        return self._conn is not None or not self._exclusive

    def acquire(self) -> bool:
        """Hold the lease if it is free (or still ours); never blocks."""
        if not self._exclusive:
            return True
        if self._conn is not None:
            if self._alive():
                return True
            self.release()
        # Autocommit: a session-level lock needs no transaction, and each check is then one
        # round trip instead of three (BEGIN, the query, COMMIT).
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got, backend = conn.execute(sa.select(sa.func.pg_try_advisory_lock(self._key), sa.func.pg_backend_pid())).one()
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            if not self._standing_by:
                log.info("lease %s is held by another process; standing by", self._name)
                self._standing_by = True
            return False
        log.info("lease %s acquired", self._name)
        self._standing_by = False
        self._conn, self._backend = conn, backend
        return True

    def _alive(self) -> bool:
        """Whether the session that took the lock is still this connection's: a session-level
        advisory lock is held until it is unlocked or its session ends, and only ``release``
        unlocks it, so the same backend answering means the lock is still held. (Reading
        ``pg_locks`` to see the lock itself cost PostgreSQL 0.3-0.4 ms per batch, as the view
        copies the whole lock table; this is one round trip with nothing to look up.)"""
        assert self._conn is not None
        try:
            return self._conn.execute(_BACKEND).scalar_one() == self._backend
        except Exception:
            log.warning("lease %s lost with its connection", self._name)
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
            self._conn.close()
        except Exception:  # the session is gone: the database has released the lock already
            self._conn.invalidate()
        self._conn, self._backend = None, None
