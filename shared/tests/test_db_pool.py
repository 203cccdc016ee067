"""The engines' connection pool under the concurrency an API serves."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.db import create_engine

pytestmark = pytest.mark.postgres


def test_bursts_of_sixteen_concurrent_requests_reuse_their_connections(postgres_url: str) -> None:
    """No connection opened per request: past the first sixteen, every transaction takes one
    the pool kept. (A pool keeping 10 closed the six more that each burst needed as they came
    back, and opened them again for the next: a new PostgreSQL backend each time.)"""
    engine = create_engine(postgres_url)
    opened: list[object] = []
    event.listen(engine, "connect", lambda dbapi_connection, _record: opened.append(dbapi_connection))
    burst = threading.Barrier(16)
    failures: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(10):
                burst.wait()  # all sixteen at once, then all back in the pool
                with engine.begin() as conn:
                    conn.execute(sa.text("SELECT pg_sleep(0.01)"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert not failures
    assert len(opened) <= 16
