"""Appends kept in a transaction and written together (``EventStore.deferred``), as consumers
apply a batch: the same ledger, chains and read models as appends written one at a time."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.errors import ConcurrencyConflict
from pension_shared.schema import events, outbox, stream_heads
from pension_shared.verification import verify_ledger
from shared_support.tally import TallyService, added, meta, stream_of, tally_totals

pytestmark = pytest.mark.postgres


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    return seen


def _ledger(conn: sa.Connection) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        sa.select(events.c.stream_id, events.c.sequence, events.c.data).order_by(events.c.position))]


def test_kept_appends_are_written_at_the_end_as_one_ledger_with_intact_chains(tally: TallyService) -> None:
    tally.add("P1", 1)  # an existing stream, and new ones
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 2)], meta())
        tally.store.append(conn, stream_of("P2"), 0, [added("P2", 3), added("P2", 4)], meta())
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 5)], meta())  # after the kept head
        tally.store.append(conn, stream_of("P2"), 2, [added("P2", 6)], meta())
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1  # nothing written yet
    with tally.engine.connect() as conn:
        assert _ledger(conn) == [
            ("tally-P1", 1, '{"amount":1}'), ("tally-P1", 2, '{"amount":2}'), ("tally-P2", 1, '{"amount":3}'),
            ("tally-P2", 2, '{"amount":4}'), ("tally-P1", 3, '{"amount":5}'), ("tally-P2", 3, '{"amount":6}'),
        ]
        assert dict(conn.execute(sa.select(stream_heads.c.stream_id, stream_heads.c.version)).all()) == {
            "tally-P1": 3, "tally-P2": 3}
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 6
        report = verify_ledger(conn)
        assert report.intact and report.events == 6
    assert tally.totals() == {"P1": (8, 3), "P2": (13, 3)}


def test_the_kept_appends_of_many_streams_take_one_statement(pg_tally: TallyService) -> None:
    for n in range(5):
        pg_tally.add(f"P{n}", 1)
    seen = _statements(pg_tally.engine)
    with pg_tally.engine.begin() as conn, pg_tally.store.deferred(conn):
        for n in range(5):
            pg_tally.store.append_to_existing(conn, stream_of(f"P{n}"), [added(f"P{n}", 2)], meta())
    assert sum("INSERT INTO events" in s for s in seen) == 1
    assert pg_tally.totals() == {f"P{n}": (3, 2) for n in range(5)}


def test_a_stream_is_loaded_with_its_kept_events(tally: TallyService) -> None:
    tally.add("P1", 1)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 2)], meta())
        stream = tally.store.load(conn, stream_of("P1"))
        assert (stream.version, [e.data["amount"] for e in stream.events]) == (2, [1, 2])
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1  # still kept
        tally.store.append_to(conn, stream, [added("P1", 3)], meta())
        assert tally.store.head_position(conn) == 3  # what a command answers: written first
    assert tally.totals() == {"P1": (6, 3)}
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact


def test_a_stale_version_is_refused_at_once(tally: TallyService) -> None:
    with pytest.raises(ConcurrencyConflict), tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append(conn, stream_of("P1"), 0, [added("P1", 1)], meta())
        tally.store.append(conn, stream_of("P1"), 0, [added("P1", 2)], meta())
    assert tally.count("events") == 0


def test_a_writer_that_got_there_first_is_found_when_the_kept_appends_are_written(pg_tally: TallyService) -> None:
    tally = pg_tally
    tally.add("P2", 1)
    with pytest.raises(ConcurrencyConflict), tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append(conn, stream_of("P3"), 0, [added("P3", 1)], meta())
        tally.store.append(conn, stream_of("P2"), 1, [added("P2", 2)], meta())
        tally.add("P2", 9)  # another transaction, committed first
    with tally.engine.connect() as conn:
        assert _ledger(conn) == [("tally-P2", 1, '{"amount":1}'), ("tally-P2", 2, '{"amount":9}')]
    assert tally.totals() == {"P2": (10, 2)}


def test_nothing_kept_is_written_when_the_transaction_fails(tally: TallyService) -> None:
    with pytest.raises(RuntimeError), tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append(conn, stream_of("P1"), 0, [added("P1", 1)], meta())
        raise RuntimeError("the batch failed")
    assert tally.count("events") == tally.count("outbox") == tally.count(tally_totals) == 0
    with tally.engine.begin() as conn:  # the connection keeps nothing for its next transaction
        tally.store.append(conn, stream_of("P1"), 0, [added("P1", 7)], meta())
    assert tally.totals() == {"P1": (7, 1)}


def test_immediately_writes_appends_as_they_are_made_again(tally: TallyService) -> None:
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append(conn, stream_of("P1"), 0, [added("P1", 1)], meta())
        tally.store.flush(conn)
        with tally.store.immediately(conn):
            tally.store.append(conn, stream_of("P2"), 0, [added("P2", 2)], meta())
            assert conn.execute(sa.select(sa.func.count()).select_from(tally_totals)).scalar_one() == 2
        tally.store.append(conn, stream_of("P3"), 0, [added("P3", 3)], meta())
        assert conn.execute(sa.select(sa.func.count()).select_from(tally_totals)).scalar_one() == 2  # kept
    assert tally.totals() == {"P1": (1, 1), "P2": (2, 1), "P3": (3, 1)}


def test_load_many_gives_each_stream_as_load_does_kept_events_included(tally: TallyService) -> None:
    tally.add("P1", 1, times=2)
    tally.add("P2", 5)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.append_to_existing(conn, stream_of("P2"), [added("P2", 6)], meta())
        many = tally.store.load_many(conn, [stream_of("P1"), stream_of("P2"), stream_of("P9")])
        for stream_id, stream in many.items():
            one = tally.store.load(conn, stream_id)
            assert (stream.version, [e.id for e in stream.events]) == (one.version, [e.id for e in one.events])
    assert [len(many[stream_of(s)].events) for s in ("P1", "P2", "P9")] == [2, 2, 0]


def test_a_connection_lost_before_the_kept_appends_are_written_fails_as_the_disconnect_it_is(pg_tally) -> None:  # noqa: ANN001
    """The database restarting under a transaction: the error that reaches the caller is the
    disconnect (OperationalError, a 503 to retry), not one raised while cleaning up (chaos: 500)."""
    with pytest.raises(sa.exc.OperationalError) as raised, pg_tally.engine.begin() as conn, pg_tally.store.deferred(conn):
        pg_tally.store.append(conn, stream_of("P1"), 0, [added("P1", 1)], meta())
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_tally.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    assert raised.value.connection_invalidated
    assert pg_tally.count("events") == pg_tally.count("outbox") == 0
    with pg_tally.engine.begin() as conn:  # the next transaction keeps nothing of the lost one
        pg_tally.store.append(conn, stream_of("P1"), 0, [added("P1", 7)], meta())
    assert pg_tally.totals() == {"P1": (7, 1)}
