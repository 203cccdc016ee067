"""The engines' connection pool under the concurrency an API serves."""

from __future__ import annotations

import threading
import time

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


def _backend(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _counting_pings(engine: sa.Engine) -> list[object]:
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:  # noqa: ANN001
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return pings


def test_a_quiet_pooled_connection_is_taken_without_a_ping(postgres_url: str) -> None:
    """No round trip at checkout while the server has sent the connection nothing."""
    engine = create_engine(postgres_url, pool_size=1)
    pings = _counting_pings(engine)
    backend = _backend(engine)
    assert {_backend(engine) for _ in range(20)} == {backend}
    assert pings == []
    engine.dispose()


def test_a_connection_the_server_closed_is_replaced_at_checkout_without_an_error(postgres_url: str) -> None:
    """The server ends every pooled connection (as a restart does): the next checkouts ping
    them, find them gone and connect again, and the work runs without an error."""
    engine = create_engine(postgres_url, pool_size=3)
    pings = _counting_pings(engine)
    connections = [engine.connect() for _ in range(3)]
    before = {conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for conn in connections}
    for conn in connections:
        conn.close()
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        ended = conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM unnest(CAST(:pids AS integer[])) AS pid"),
                             {"pids": sorted(before)}).scalar_one()
    assert ended == 3
    time.sleep(0.2)  # the goodbyes reach the pooled sockets
    after = set()
    for _ in range(6):
        with engine.begin() as conn:
            after.add(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    assert after and not after & before
    assert pings  # the closed connection was pinged, not used
    engine.dispose()
    admin.dispose()


def test_a_connection_with_a_notification_waiting_is_pinged_and_kept(postgres_url: str) -> None:
    """Something the server sent while the connection was idle (here a notification on a
    channel it listens to) is not a goodbye: the ping answers, and the same backend serves."""
    engine = create_engine(postgres_url, pool_size=1)
    pings = _counting_pings(engine)
    with engine.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        conn.exec_driver_sql("LISTEN pension_pool_test")
        conn.commit()
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("NOTIFY pension_pool_test")
    time.sleep(0.2)
    assert _backend(engine) == backend
    assert len(pings) == 1
    assert _backend(engine) == backend and len(pings) == 1  # read with the ping: quiet again
    engine.dispose()
    admin.dispose()


def test_psycopg_parses_each_long_statement_text_once(postgres_url: str) -> None:
    from psycopg import _queries
    from sqlalchemy.dialects import postgresql

    from pension_shared.db import STATEMENT_TEXTS_PARSED_ONCE, bound_list, in_list
    from pension_shared.relay import _mark_published

    engine = create_engine(postgres_url)
    try:
        assert (_queries.MAX_CACHED_STATEMENT_LENGTH, _queries.MAX_CACHED_STATEMENT_PARAMS) >= STATEMENT_TEXTS_PARSED_ONCE
        largest = _mark_published(512).compile(dialect=postgresql.psycopg.dialect())  # the relay's batch of 500
        assert len(str(largest).encode()) <= STATEMENT_TEXTS_PARSED_ONCE[0]
        assert len(largest.params) <= STATEMENT_TEXTS_PARSED_ONCE[1]
        size, params = bound_list("n", [(i, i + 1) for i in range(300)])  # 512 pairs: 1,024 parameters
        pairs = sa.select(sa.func.count()).select_from(
            sa.select(sa.literal(1).label("n"), sa.literal(2).label("m")).subquery("pair")
        ).where(in_list(sa.tuple_(sa.literal_column("pair.n"), sa.literal_column("pair.m")), "n", size))
        with engine.connect() as conn:
            assert conn.execute(pairs, params).scalar_one() == 1
            before = _queries._query2pg.cache_info()
            for _ in range(3):
                assert conn.execute(pairs, params).scalar_one() == 1
            after = _queries._query2pg.cache_info()
        assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)
    finally:
        engine.dispose()
