"""The relay's lease: a session-level advisory lock on PostgreSQL."""

from __future__ import annotations

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
