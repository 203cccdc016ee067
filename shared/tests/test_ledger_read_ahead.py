"""Reading ahead within ``deferred`` (``EventStore.preload``), as a consumer does for a batch: the
streams and heads its policies will read, in two statements, then the same loads, appends and
ledger as without it, and nothing read ahead used once it may be stale."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import Stream
from pension_shared.verification import verify_ledger
from shared_support.tally import TallyService, added, meta, stream_of

pytestmark = pytest.mark.postgres

KIND = "Total.v1"


def _reads(engine: sa.Engine) -> list[str]:
    """The statements that read a stream or a head from now on."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        reading = statement.lstrip().startswith("SELECT") or (
            statement.lstrip().startswith("WITH") and "INSERT" not in statement and "UPDATE" not in statement)
        if reading and ("FROM events" in statement or "FROM stream_heads" in statement or "FROM snapshots" in statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen


def _shape(stream: Stream) -> tuple:
    return stream.version, [e.id for e in stream.events], stream.snapshot


def _snapshot_at(tally: TallyService, subject: str) -> None:
    """Give the stream a snapshot of its whole state so far."""
    with tally.engine.begin() as conn:
        stream = tally.store.load(conn, stream_of(subject))
        tally.store.snapshot_after(conn, Stream(stream.stream_id, 0, []), stream.events, KIND,
                                   lambda: {"total": sum(e.data["amount"] for e in stream.events)}, every=1)


def test_streams_read_ahead_load_as_they_would_without_a_statement_more(tally: TallyService) -> None:
    tally.add("P1", 1, times=3)
    _snapshot_at(tally, "P1")
    tally.add("P1", 4)
    tally.add("P2", 5)
    with tally.engine.connect() as conn:
        expected = {s: _shape(tally.store.load(conn, stream_of(s), snapshot=KIND)) for s in ("P1", "P2", "P9")}
        whole = _shape(tally.store.load(conn, stream_of("P1")))
    reads = _reads(tally.engine)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, {stream_of(s): KIND for s in ("P1", "P2", "P9")})
        ahead = len(reads)
        loaded = {s: _shape(tally.store.load(conn, stream_of(s), snapshot=KIND)) for s in ("P1", "P2", "P9")}
        assert len(reads) == ahead  # every one from what was read ahead
        assert _shape(tally.store.load(conn, stream_of("P1"))) == whole  # another kind asked: read
    assert loaded == expected
    assert expected["P1"][2] is not None and len(expected["P1"][1]) == 1  # the snapshot, then one event


def test_heads_read_ahead_serve_the_appends_and_the_ledger_is_the_same(tally: TallyService) -> None:
    for subject in ("P1", "P2"):
        tally.add(subject, 1)
    reads = _reads(tally.engine)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, heads=[stream_of("P1"), stream_of("P2"), stream_of("P9")])
        ahead = len(reads)
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 2)], meta())
        tally.store.append_to_existing(conn, stream_of("P2"), [added("P2", 3)], meta())
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 4)], meta())  # after the kept head
        with pytest.raises(LookupError):  # no such stream, as its stored head says
            tally.store.append_to_existing(conn, stream_of("P9"), [added("P9", 5)], meta())
        assert len(reads) == ahead
    assert tally.totals() == {"P1": (7, 3), "P2": (4, 2)}
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact


def test_a_stream_read_ahead_is_loaded_with_the_batch_appends_once_each(tally: TallyService) -> None:
    tally.add("P1", 1, times=2)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, {stream_of("P1"): None})
        first = tally.store.load_many(conn, [stream_of("P1")])[stream_of("P1")]
        tally.store.append_to(conn, first, [added("P1", 3)], meta())
        again = tally.store.load_many(conn, [stream_of("P1")])[stream_of("P1")]
        assert (again.version, [e.data["amount"] for e in again.events]) == (3, [1, 1, 3])
        tally.store.append_to(conn, again, [added("P1", 4)], meta())
        assert len(first.events) == 2  # what a load gave is its own: not grown by later loads
    assert tally.totals() == {"P1": (9, 4)}


def test_what_was_read_ahead_is_dropped_once_the_kept_appends_are_written(tally: TallyService) -> None:
    tally.add("P1", 1)
    reads = _reads(tally.engine)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, {stream_of("P1"): None}, heads=[stream_of("P1")])
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 2)], meta())
        tally.store.flush(conn)  # written: the kept head is gone, and what was read ahead is stale
        before = len(reads)
        stream = tally.store.load(conn, stream_of("P1"), snapshot=KIND)
        assert len(reads) > before  # read again
        assert (stream.version, [e.data["amount"] for e in stream.events]) == (2, [1, 2])
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 3)], meta())
    assert tally.totals() == {"P1": (6, 3)}


def test_what_was_read_ahead_is_dropped_when_writes_are_made_immediately(tally: TallyService) -> None:
    tally.add("P1", 1)
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, {stream_of("P1"): None}, heads=[stream_of("P1")])
        with tally.store.immediately(conn):  # a policy that reads read models writes as it goes
            tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 2)], meta())
        stream = tally.store.load_many(conn, [stream_of("P1")])[stream_of("P1")]
        assert (stream.version, [e.data["amount"] for e in stream.events]) == (2, [1, 2])
        tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 3)], meta())
    assert tally.totals() == {"P1": (6, 3)}
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact


def test_a_writer_that_commits_after_the_read_ahead_is_refused_at_the_head(pg_tally: TallyService) -> None:
    tally = pg_tally
    tally.add("P1", 1)
    with pytest.raises(ConcurrencyConflict), tally.engine.begin() as conn, tally.store.deferred(conn):
        tally.store.preload(conn, {stream_of("P1"): KIND})
        tally.add("P1", 9)  # another transaction, committed after the read ahead
        stream = tally.store.load(conn, stream_of("P1"), snapshot=KIND)
        assert stream.version == 1  # as read ahead
        tally.store.append_to(conn, stream, [added("P1", 2)], meta())
    assert tally.totals() == {"P1": (10, 2)}  # the other writer's, and nothing of the refused batch


def test_outside_deferred_nothing_is_read_ahead(tally: TallyService) -> None:
    tally.add("P1", 1)
    reads = _reads(tally.engine)
    with tally.engine.begin() as conn:
        tally.store.preload(conn, {stream_of("P1"): None}, heads=[stream_of("P1")])
        assert reads == []
        assert tally.store.load(conn, stream_of("P1")).version == 1
