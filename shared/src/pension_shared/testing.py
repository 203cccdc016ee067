"""Pytest fixtures for the real infrastructure that ``make test`` starts.

Every test gets fresh, randomly named resources (a database of its own, topics or groups with
random suffixes) instead of shared state. The PostgreSQL and Kafka fixtures never skip: when
the infrastructure is missing they fail and say how to start it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from pension_shared.bulk_rebuild import rebuild_set_based

_HOW = "start it with `make infra-up` (or run everything with `make test`)"


def random_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free now: each bound until all are found, then released."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("PENSION_TEST_PG_URL")
    if not url:
        pytest.fail(f"PENSION_TEST_PG_URL is not set: these tests need the real PostgreSQL; {_HOW}")
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - report any reason clearly
        pytest.fail(f"PostgreSQL at {url} is not reachable ({exc}); {_HOW}")
    return url


@contextmanager
def postgres_databases(server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the server, all dropped on the way out (for
    fixtures of any scope)."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = random_id("t_")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def new_postgres_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases, all dropped after the test."""
    with postgres_databases(postgres_server_url) as create:
        yield create


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh, empty database for this test only."""
    return new_postgres_database()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("PENSION_TEST_KAFKA")
    if not bootstrap:
        pytest.fail(f"PENSION_TEST_KAFKA is not set: these tests need the real Kafka broker; {_HOW}")
    from kafka import KafkaAdminClient

    try:
        KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000).close()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka at {bootstrap} is not reachable ({exc}); {_HOW}")
    return bootstrap


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a test on both backends: the embedded default and production."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def empty_service(engine: sa.Engine, store, *others: str) -> None:  # noqa: ANN001
    """The service's ledger, outbox, inbox, the store's read models and the ``others`` tables
    emptied (PostgreSQL): a fresh start for each example of a property test."""
    tables = [table.name for projection in store.projections for table in projection.tables]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(['events', 'stream_heads', 'outbox', 'inbox', *others, *tables])}")


def read_models(conn: sa.Connection, store) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Every row of the store's read models, by table, in primary key order."""
    tables = [table for projection in store.projections for table in projection.tables]
    return {table.name: [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
            for table in tables}


def rebuilt_both_ways(conn: sa.Connection, store) -> tuple[dict, dict, dict]:  # noqa: ANN001
    """The store's read models as its projections kept them, as the set-based rebuild makes them
    again, and as the Python projections do (both rebuilds in ``conn``'s transaction, on PostgreSQL)."""
    live = read_models(conn, store)
    assert rebuild_set_based(conn, store.projections, store.upcasters) is not None, "the set-based path was declined"
    set_based = read_models(conn, store)
    store.rebuild_projections(conn, set_based=False)
    return live, set_based, read_models(conn, store)
