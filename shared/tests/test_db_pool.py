"""The engines' connection pool under the concurrency an API serves."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.db import create_engine

pytestmark = pytest.mark.postgres


def _bursts(engine: sa.Engine, *, clients: int, rounds: int) -> tuple[int, int]:
    """``clients`` threads each running ``rounds`` short transactions, all starting each round
    at once: (connections the engine opened, transactions done). Any failure is raised."""
    opened: list[object] = []
    event.listen(engine, "connect", lambda dbapi_connection, _record: opened.append(dbapi_connection))
    burst = threading.Barrier(clients)
    failures: list[BaseException] = []
    done: list[int] = []

    def client() -> None:
        try:
            for _ in range(rounds):
                burst.wait()  # all at once, then all back in the pool
                with engine.begin() as conn:
                    done.append(conn.execute(sa.text("SELECT 1 FROM pg_sleep(0.01)")).scalar_one())
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert not failures
    return len(opened), len(done)


def test_bursts_of_sixteen_concurrent_requests_reuse_their_connections(postgres_url: str) -> None:
    """No connection opened per request: past the first sixteen, every transaction takes one
    the pool kept. (A pool keeping 10 closed the six more that each burst needed as they came
    back, and opened them again for the next: a new PostgreSQL backend each time.)"""
    opened, _ = _bursts(create_engine(postgres_url), clients=16, rounds=10)
    assert opened <= 16


def test_a_burst_beyond_the_pool_waits_for_the_connections_it_keeps(postgres_url: str) -> None:
    """Twenty-four transactions at once on a pool of four: every one is done, on the four
    connections kept, the others waiting for one to come back. (With overflow allowed, the pool
    opened a connection per transaction beyond four, and closed each as it came back: a new
    PostgreSQL backend, its caches and every statement planned again, for each.)"""
    opened, done = _bursts(create_engine(postgres_url, pool_size=4), clients=24, rounds=5)
    assert done == 24 * 5
    assert opened <= 4
