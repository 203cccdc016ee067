"""The relay's lease: a session-level advisory lock on PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from pension_shared.db import create_engine
from pension_shared.lease import Lease, lock_key

pytestmark = pytest.mark.postgres


def _backends_holding(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalars())


@pytest.mark.parametrize("name", ["outbox-relay:fund-account", "outbox-relay:account"])
def test_a_held_lease_stays_with_its_session_batch_after_batch(postgres_url: str, name: str) -> None:
    """Whatever the sign of its key (fund-account's is negative), the holder sees it still holds
    the lease: it neither lets go between batches nor lets a standby in."""
    assert (lock_key(name) < 0) == (name == "outbox-relay:fund-account")
    engine = create_engine(postgres_url)
    active, standby = Lease(engine, name), Lease(engine, name)
    try:
        assert active.acquire()
        [session] = _backends_holding(engine)
        for _ in range(5):
            assert active.acquire()
            assert not standby.acquire()
        assert _backends_holding(engine) == {session}
        active.release()
        assert standby.acquire()
    finally:
        active.release()
        standby.release()
        engine.dispose()


def test_a_lease_whose_session_ends_passes_to_a_standby_and_its_holder_steps_down(postgres_url: str) -> None:
    """The database releases the lock with the session that held it; the holder, checking
    before its next batch, sees its session is gone and does not take the lease back while the
    standby holds it."""
    engine = create_engine(postgres_url)
    active, standby = Lease(engine, "outbox-relay:tally-ended"), Lease(engine, "outbox-relay:tally-ended")
    try:
        assert active.acquire()
        [session] = _backends_holding(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": session}).scalar_one()
        deadline = time.monotonic() + 5
        while not standby.acquire():
            assert time.monotonic() < deadline, "the ended session's lock was not released"
            time.sleep(0.05)
        assert not active.acquire()
        assert not active.held
        [taken_over] = _backends_holding(engine)
        assert taken_over != session
    finally:
        active.release()
        standby.release()
        engine.dispose()
