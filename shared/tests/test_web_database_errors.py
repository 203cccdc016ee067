"""A database that is restarting, or whose every pooled connection stays busy, answers 503
problem+json, to be retried; a refused query is still a 500."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pension_shared.web import PROBLEM_JSON, install_problem_handlers


class _DriverError(Exception):
    pass


def _app() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    # One connection, held by the test while it asks for /exhausted.
    busy = sa.create_engine("sqlite://", poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.05,
                            connect_args={"check_same_thread": False})
    app.state.busy = busy

    @app.get("/exhausted")
    def exhausted() -> None:
        with busy.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @app.get("/down")
    def down() -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, _DriverError("connection refused"))

    @app.get("/dropped")
    def dropped() -> None:
        raise sa.exc.DBAPIError("SELECT 1", {}, _DriverError("server closed the connection"), connection_invalidated=True)

    @app.get("/refused")
    def refused() -> None:
        raise sa.exc.ProgrammingError("SELECT nonsense", {}, _DriverError("syntax error"))

    return TestClient(app, raise_server_exceptions=False)


def _assert_retry_later(response) -> None:  # noqa: ANN001
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "Idempotency-Key" in response.json()["detail"]


def test_an_unreachable_database_is_a_503_problem_to_retry() -> None:
    client = _app()
    for path in ("/down", "/dropped"):
        _assert_retry_later(client.get(path))


def test_a_pool_with_no_connection_free_is_a_503_problem_to_retry() -> None:
    client = _app()
    with client.app.state.busy.connect():
        _assert_retry_later(client.get("/exhausted"))


def test_a_query_the_database_refused_is_still_an_internal_error() -> None:
    response = _app().get("/refused")
    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
