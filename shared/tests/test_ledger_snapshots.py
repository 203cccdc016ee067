"""Snapshots: a stream loads as its last snapshot and the events after it, folds to the same
state as all its events, and a snapshot that does not continue the stream's chain is not used."""

from typing import Any, Mapping

import pytest
import sqlalchemy as sa

from pension_shared.envelope import Envelope
from pension_shared.ledger import Snapshot, Stream
from pension_shared.schema import snapshots
from pension_shared.verification import verify_ledger
from shared_support.tally import TallyService, added, meta, stream_of

pytestmark = pytest.mark.postgres

KIND = "Total.v1"


class Total:
    """A folding aggregate: the sum and count of a tally stream's amounts."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.total, self.count = (state["total"], state["count"]) if state else (0, 0)

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        assert name == "Added"
        self.total += data["amount"]
        self.count += 1

    def snapshot_state(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count}

    @classmethod
    def of(cls, stream: Stream) -> "Total":
        total = cls(stream.snapshot_state)
        for envelope in stream.events:
            total.apply(envelope.event_type.name, envelope.data)
        return total

    @classmethod
    def after(cls, stream: Stream, recorded: list[Envelope]) -> dict[str, Any]:
        """The state of ``stream`` with ``recorded`` appended."""
        total = cls.of(stream)
        for envelope in recorded:
            total.apply(envelope.event_type.name, envelope.data)
        return total.snapshot_state()


def load(tally: TallyService, subject: str, kind: str = KIND) -> Stream:
    with tally.engine.connect() as conn:
        return tally.store.load(conn, stream_of(subject), snapshot=kind)


def command(tally: TallyService, subject: str, amounts: list[int], *, every: int = 10) -> Snapshot | None:
    """Load from the snapshot, append, keep a snapshot when one is due: as a command handler does."""
    with tally.engine.begin() as conn:
        stream_id = stream_of(subject)
        stream = tally.store.load(conn, stream_id, snapshot=KIND)
        recorded = tally.store.append_to(conn, stream, [added(subject, a) for a in amounts], meta())
        return tally.store.snapshot_after(conn, stream, recorded, KIND, lambda: Total.after(stream, recorded), every=every)


def stored_snapshot(tally: TallyService, subject: str) -> tuple | None:
    with tally.engine.connect() as conn:
        row = conn.execute(sa.select(snapshots.c.kind, snapshots.c.version).where(
            snapshots.c.stream_id == stream_of(subject))).one_or_none()
    return tuple(row) if row else None


def set_snapshot(tally: TallyService, subject: str, **values: Any) -> None:
    with tally.engine.begin() as conn:
        conn.execute(snapshots.update().where(snapshots.c.stream_id == stream_of(subject)).values(**values))


def test_a_snapshot_is_taken_once_enough_events_came_after_the_last(tally: TallyService) -> None:
    taken = [command(tally, "P1", [n]) for n in range(1, 10)]
    assert taken == [None] * 9 and stored_snapshot(tally, "P1") is None
    snapshot = command(tally, "P1", [10, 11])  # events 10 and 11: 11 since none
    assert snapshot is not None and (snapshot.kind, snapshot.version) == (KIND, 11)
    assert snapshot.state == {"total": sum(range(1, 12)), "count": 11}
    assert snapshot.hash == load(tally, "P1").snapshot.hash
    with tally.engine.connect() as conn:
        assert snapshot.hash == tally.store.load(conn, stream_of("P1")).events[-1].hash
    assert [command(tally, "P1", [1]) for _ in range(9)] == [None] * 9  # 12..20: 9 after the snapshot
    assert command(tally, "P1", [1]).version == 21
    assert stored_snapshot(tally, "P1") == (KIND, 21)


def test_a_stream_loads_as_its_snapshot_and_the_events_after_it_and_folds_the_same(tally: TallyService) -> None:
    for n in range(1, 26):
        command(tally, "P1", [n])
    stream = load(tally, "P1")
    assert stream.snapshot is not None and stream.snapshot.version == 20
    assert [e.sequence for e in stream.events] == [21, 22, 23, 24, 25] and stream.version == 25
    with tally.engine.connect() as conn:
        full = tally.store.load(conn, stream_of("P1"))
    assert Total.of(stream).snapshot_state() == Total.of(full).snapshot_state() == {"total": 325, "count": 25}


def test_appending_after_a_snapshot_at_the_head_continues_the_chain(tally: TallyService) -> None:
    for n in range(1, 11):
        command(tally, "P1", [n])
    stream = load(tally, "P1")
    assert (stream.snapshot.version, stream.events, stream.version) == (10, [], 10)
    command(tally, "P1", [11])
    with tally.engine.connect() as conn:
        full = tally.store.load(conn, stream_of("P1"))
        assert full.events[-1].prevhash == full.events[-2].hash == stream.snapshot.hash
        assert verify_ledger(conn).intact


def test_streams_without_a_snapshot_and_of_other_kinds_load_every_event(tally: TallyService) -> None:
    for n in range(1, 13):
        command(tally, "P1", [n])
    tally.add("P2", 5, times=3)
    with tally.engine.connect() as conn:
        loaded = tally.store.load_many(conn, [stream_of("P1"), stream_of("P2")],
                                       snapshots={stream_of("P1"): "Total.v2", stream_of("P2"): KIND})
    assert loaded[stream_of("P1")].snapshot is None and len(loaded[stream_of("P1")].events) == 12
    assert loaded[stream_of("P2")].snapshot is None and len(loaded[stream_of("P2")].events) == 3


@pytest.mark.parametrize("edit", [
    {"hash": "0" * 64},  # at the head, with another hash
    {"version": 9},  # behind the head, where the next event does not link to its hash
    {"version": 11},  # past the head
])
def test_a_snapshot_off_the_streams_chain_is_not_used(tally: TallyService, edit: dict) -> None:
    for n in range(1, 11):
        command(tally, "P1", [n])
    set_snapshot(tally, "P1", state='{"count":1,"total":1000000}', **edit)
    stream = load(tally, "P1")
    assert stream.snapshot is None and [e.sequence for e in stream.events] == list(range(1, 11))
    assert Total.of(stream).snapshot_state() == {"total": 55, "count": 10}


def test_a_later_snapshot_is_never_replaced_by_an_earlier_one_of_its_kind(tally: TallyService) -> None:
    for n in range(1, 21):
        command(tally, "P1", [n])
    with tally.engine.begin() as conn:
        earlier = tally.store.load(conn, stream_of("P1")).events[9]
        tally.store.save_snapshot(conn, stream_of("P1"), Snapshot(KIND, 10, earlier.hash, {"total": 55, "count": 10}))
    assert stored_snapshot(tally, "P1") == (KIND, 20)
    with tally.engine.begin() as conn:
        tally.store.save_snapshot(conn, stream_of("P1"), Snapshot("Total.v2", 10, earlier.hash, {"sum": 55}))
    assert stored_snapshot(tally, "P1") == ("Total.v2", 10)


def test_within_deferred_appends_a_reload_after_a_snapshot_sees_each_event_once(tally: TallyService) -> None:
    for n in range(1, 10):
        command(tally, "P1", [n])
    with tally.engine.begin() as conn, tally.store.deferred(conn):
        stream_id = stream_of("P1")
        stream = tally.store.load(conn, stream_id, snapshot=KIND)
        recorded = tally.store.append_to(conn, stream, [added("P1", 10)], meta())
        assert tally.store.snapshot_after(conn, stream, recorded, KIND, lambda: Total.after(stream, recorded),
                                          every=10).version == 10
        # Kept until the kept events are written: a snapshot row is only ever locked by the
        # transaction that already holds its stream's head.
        assert conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar_one() == 0
        again = tally.store.load(conn, stream_id, snapshot=KIND)
        assert again.version == 10 and Total.of(again).snapshot_state() == {"total": 55, "count": 10}
    assert stored_snapshot(tally, "P1") == (KIND, 10)
    assert Total.of(load(tally, "P1")).snapshot_state() == {"total": 55, "count": 10}
