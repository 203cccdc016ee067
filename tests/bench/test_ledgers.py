"""The benchmark's ledgers (bench/ledgers.py) on a real PostgreSQL: grown by cloning what was
recorded into new, intact hash chains, and left as a ledger written over time is (vacuumed, its
statistics taken), so that the rebuild measured on it does not also pay for the bulk load."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

import bench.ledgers
from bench.ledgers import amplify, checkpoint, measure, settle
from pension_cli.platform import SERVICES
from pension_shared.db import create_engine
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.migrations import upgrade
from pension_shared.verification import VerificationReport, verify_ledger

pytestmark = pytest.mark.postgres


@pytest.fixture
def ledger(postgres_url: str) -> Iterator[tuple[sa.Engine, EventStore]]:
    """A service's migrated database and its event store, with no projection."""
    definition = SERVICES[0]
    upgrade(definition.migrations, postgres_url)
    engine = create_engine(postgres_url)
    try:
        yield engine, EventStore(service=definition.name, topic=definition.topic, projections=[])
    finally:
        engine.dispose()


def _noted(conn: sa.Connection, store: EventStore, *amounts: int) -> None:
    """A new participant's stream of one Noted event per amount."""
    participant = f"P{uuid.uuid4().hex[:16].upper()}"
    events = [NewEvent("Noted", {"participant_id": participant, "amount": amount}, participant) for amount in amounts]
    store.append(conn, f"participant-{participant}", 0, events, Metadata(time="2025-08-15T17:00:00+08:00"))


def test_a_cloned_ledger_is_intact_and_left_vacuumed(ledger: tuple[sa.Engine, EventStore]) -> None:
    engine, store = ledger
    for _ in range(3):
        with engine.begin() as conn:
            _noted(conn, store, 1, 2)

    assert amplify(engine, 60) == (6, 60)
    checkpoint(engine)

    with engine.connect() as conn:
        report = verify_ledger(conn)
        subjects = conn.exec_driver_sql("SELECT count(DISTINCT subject) FROM events").scalar_one()
        heads = conn.exec_driver_sql("SELECT count(*) FROM stream_heads").scalar_one()
        vacuumed, analysed = conn.exec_driver_sql(
            "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'"
        ).one()
        pages, visible = conn.exec_driver_sql(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = CAST('events' AS regclass)").one()
    assert report.intact and report.events == 60 and report.streams == 30
    assert subjects == heads == 30
    assert vacuumed and analysed
    assert pages > 0 and visible == pages


def test_settling_leaves_autovacuum_nothing_to_take_up_beside_the_next_measure(
    ledger: tuple[sa.Engine, EventStore],
) -> None:
    engine, store = ledger
    with engine.begin() as conn:
        _noted(conn, store, 1)
        # Counted once it commits, not up to a second later (a backend reports its counts at
        # most once a second; a count reported after the vacuum would be left for autovacuum).
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    settle(engine)

    with engine.connect() as conn:
        # What the append wrote (the events, the stream's head, the outbox) is vacuumed and
        # analysed, as is every other table: none has a row inserted or changed since.
        left = conn.exec_driver_sql(
            "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NULL OR last_analyze IS NULL "
            "OR n_ins_since_vacuum > 0 OR n_mod_since_analyze > 0"
        ).scalars().all()
        written = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('events', 'stream_heads', 'outbox')"
        ).scalar_one()
    assert left == [] and written == 3


def test_each_operation_is_run_as_often_as_asked_and_every_run_is_kept(
    ledger: tuple[sa.Engine, EventStore], postgres_url: str,
) -> None:
    engine, store = ledger
    for _ in range(2):
        with engine.begin() as conn:
            _noted(conn, store, 1, 2, 3)
    logged: list[str] = []

    result = measure("account", SERVICES[0], postgres_url, generated=(6, 6, 0.5), log=logged.append, repeats=3)

    assert len(result.rebuild.seconds) == len(result.verify.seconds) == 3
    assert all(seconds > 0 for seconds in (*result.rebuild.seconds, *result.verify.seconds))
    assert (result.rebuild.events, result.verify.events, result.intact) == (6, 6, True)
    assert (result.events, result.template_events, result.generate_s) == (6, 6, 0.5)
    slowest, fastest = result.rebuild.span
    assert slowest <= result.rebuild.per_s <= fastest
    assert [line.split("(")[-1] for line in logged] == [
        "run 1 of 3)", "run 2 of 3)", "run 3 of 3)", "intact; run 1 of 3)", "intact; run 2 of 3)", "intact; run 3 of 3)"]


def test_a_broken_chain_is_reported_by_every_verifying_run(ledger: tuple[sa.Engine, EventStore], postgres_url: str) -> None:
    engine, store = ledger
    with engine.begin() as conn:
        _noted(conn, store, 1, 2)
        conn.exec_driver_sql("UPDATE events SET hash = repeat('0', 64) WHERE position = (SELECT max(position) FROM events)")

    result = measure("account", SERVICES[0], postgres_url, generated=(2, 2, 0.1), log=lambda _: None, repeats=2)

    assert not result.intact and result.verify.events == 2


def test_runs_that_count_different_events_fail_the_measure(
    ledger: tuple[sa.Engine, EventStore], postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, store = ledger
    with engine.begin() as conn:
        _noted(conn, store, 1, 2)
    counts = iter((2, 3))
    monkeypatch.setattr(bench.ledgers, "verify_ledger", lambda conn: VerificationReport(streams=1, events=next(counts)))

    with pytest.raises(RuntimeError, match=r"verified \[2, 3\]"):
        measure("account", SERVICES[0], postgres_url, generated=(2, 2, 0.1), log=lambda _: None, repeats=2)
