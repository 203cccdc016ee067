"""The event store on both backends (the embedded SQLite default and production PostgreSQL)."""

import threading

import orjson
import pytest
import sqlalchemy as sa

from pension_shared.envelope import Upcasters, canonical_json, parse_cloudevent
from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import EventStore, NewEvent, Snapshot
from pension_shared.schema import events, outbox, stream_heads
from pension_shared.verification import verify_ledger
from shared_support.tally import (
    ADDED, TallyProjection, TallyService, added, meta, migrate, snapshot, stream_of, tally_totals,
)

pytestmark = pytest.mark.postgres


def test_appended_events_load_back_in_order_with_a_hash_chain(tally: TallyService) -> None:
    with tally.engine.begin() as conn:
        first = tally.store.append(conn, "tally-P1", 0, [added("P1", 100), added("P1", 250)], meta("corr", "cause"))
    with tally.engine.begin() as conn:
        second = tally.store.append(conn, "tally-P1", 2, [added("P1", 5)], meta())
    with tally.engine.connect() as conn:
        stream = tally.store.load(conn, "tally-P1")
    assert stream.version == 3
    assert stream.events == first + second
    assert [e.sequence for e in stream.events] == [1, 2, 3]
    assert [e.data for e in stream.events] == [{"amount": 100}, {"amount": 250}, {"amount": 5}]
    assert stream.events[0].prevhash is None
    assert stream.events[1].prevhash == stream.events[0].hash
    assert stream.events[2].prevhash == stream.events[1].hash
    for e in stream.events:
        assert e.computed_hash() == e.hash
        assert e.type == ADDED and e.source == "/pension/tally" and e.subject == "P1" and e.streamid == "tally-P1"
    assert (first[0].correlationid, first[0].causationid) == ("corr", "cause")
    assert [e.position for e in stream.events] == sorted(e.position for e in stream.events)


def test_a_stream_that_was_never_written_is_empty_at_version_zero(tally: TallyService) -> None:
    with tally.engine.connect() as conn:
        stream = tally.store.load(conn, "tally-nobody")
    assert (stream.version, stream.events) == (0, [])


def test_appending_nothing_records_nothing(tally: TallyService) -> None:
    with tally.engine.begin() as conn:
        assert tally.store.append(conn, "tally-P1", 0, [], meta()) == []
    assert tally.count(events) == tally.count(stream_heads) == tally.count(outbox) == 0


def test_an_intact_ledger_verifies(tally: TallyService) -> None:
    for n in range(30):
        tally.add(f"P{n % 7}", n + 1, times=1 + n % 3)
    with tally.engine.connect() as conn:
        report = verify_ledger(conn)
        small_batches = verify_ledger(conn, batch_size=4)
    assert report.intact and report.first_break is None
    assert (report.streams, report.events) == (7, sum(1 + n % 3 for n in range(30)))
    assert small_batches.intact and (small_batches.streams, small_batches.events) == (report.streams, report.events)


def test_an_empty_ledger_verifies(tally: TallyService) -> None:
    with tally.engine.connect() as conn:
        report = verify_ledger(conn)
    assert report.intact and (report.streams, report.events) == (0, 0)


@pytest.mark.parametrize("existing", [0, 2], ids=["new-stream", "existing-stream"])
def test_appending_at_a_stale_version_is_a_concurrency_conflict(tally: TallyService, existing: int) -> None:
    if existing:
        tally.add("P1", 1, times=existing)
    with tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", existing, [added("P1", 7)], meta())
    with pytest.raises(ConcurrencyConflict) as caught, tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", existing, [added("P1", 8)], meta())
    assert caught.value.code == "CONFLICT"
    assert tally.totals() == {"P1": (existing + 7, existing + 1)}
    with pytest.raises(ConcurrencyConflict), tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", existing + 5, [added("P1", 9)], meta())


def _race(tally: TallyService, expected_version: int, *, read_inside_transaction: bool) -> list[object]:
    """Two writers, each on its own connection, both read the head (version ``expected_version``)
    before either commits; then both append at that version."""
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[object] = [None, None]

    def writer(index: int) -> None:
        try:
            if read_inside_transaction:
                with tally.engine.begin() as conn:
                    version = tally.store.load(conn, "tally-P1").version
                    barrier.wait()
                    tally.store.append(conn, "tally-P1", version, [added("P1", 10 + index)], meta())
            else:
                with tally.engine.begin() as conn:
                    version = tally.store.load(conn, "tally-P1").version
                barrier.wait()
                with tally.engine.begin() as conn:
                    tally.store.append(conn, "tally-P1", version, [added("P1", 10 + index)], meta())
            outcomes[index] = "ok"
        except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
            outcomes[index] = exc

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(o is not None for o in outcomes), outcomes
    return outcomes


@pytest.mark.parametrize("existing", [0, 3], ids=["new-stream", "existing-stream"])
def test_two_concurrent_appends_at_the_same_version_give_exactly_one_conflict(tally: TallyService, existing: int) -> None:
    if existing:
        tally.add("P1", 1, times=existing)
    # PostgreSQL: both transactions are open and have read the head when they write; the second
    # blocks on the first's row and then finds the head moved. SQLite serialises writers (BEGIN
    # IMMEDIATE), so there both read in their own transaction before either writes.
    outcomes = _race(tally, existing, read_inside_transaction=tally.backend == "postgresql")
    assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyConflict", "str"], outcomes
    winner = outcomes.index("ok")
    with tally.engine.connect() as conn:
        stream = tally.store.load(conn, "tally-P1")
        assert verify_ledger(conn).intact
    assert stream.version == existing + 1
    assert stream.events[-1].data == {"amount": 10 + winner}
    assert tally.totals() == {"P1": (existing + 10 + winner, existing + 1)}
    assert tally.count(outbox) == existing + 1


def test_many_concurrent_writers_never_fork_a_stream(tally: TallyService) -> None:
    """Eight writers, each retrying on conflict until its one event is recorded."""
    def writer(index: int) -> None:
        while True:
            try:
                tally.add("P1", index)
                return
            except ConcurrencyConflict:
                continue

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with tally.engine.connect() as conn:
        stream = tally.store.load(conn, "tally-P1")
        assert verify_ledger(conn).intact
    assert [e.sequence for e in stream.events] == list(range(1, 9))
    assert sorted(e.data["amount"] for e in stream.events) == list(range(1, 9))
    assert tally.totals() == {"P1": (36, 8)}


def test_a_rolled_back_transaction_leaves_no_events_no_head_no_outbox_and_no_projection(tally: TallyService) -> None:
    tally.add("P1", 1)
    with pytest.raises(RuntimeError), tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", 1, [added("P1", 5)], meta())
        tally.store.append(conn, "tally-P2", 0, [added("P2", 5)], meta())
        raise RuntimeError("the command failed after deciding")
    assert tally.count(events) == tally.count(outbox) == tally.count(stream_heads) == 1
    assert tally.totals() == {"P1": (1, 1)}
    with tally.engine.connect() as conn:
        assert tally.store.load(conn, "tally-P1").version == 1


def test_every_event_has_an_outbox_row_in_the_same_transaction_holding_the_cloudevent(tally: TallyService) -> None:
    recorded = tally.add("P1", 3, times=2) + tally.add("P2", 4)
    with tally.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
    assert [r.event_id for r in rows] == [e.id for e in recorded]
    assert all(r.topic == "pension.tally" and r.published_at is None for r in rows)
    assert [r.key for r in rows] == ["P1", "P1", "P2"]
    assert [parse_cloudevent(bytes(r.payload)) for r in rows] == recorded


def test_text_of_every_kind_is_stored_and_published_byte_for_byte(tally: TallyService) -> None:
    """The append sends its events to PostgreSQL inside a JSON document: whatever JSON escapes on
    the way (quotes, backslashes, control characters, NUL) or leaves as UTF-8 (Chinese, emoji)
    comes out as the store's own canonical JSON, in the ledger and in the outbox."""
    text = '张三 "quoted" back\\slash \\u0041 new\nline\ttab \x00 nul \x1f unit 🎉'
    new = [NewEvent("Added", {"amount": 1, "note": text, "nested": {"键": [text, None, 1.5]}}, "P1"),
           NewEvent("Added", {"amount": 2, "note": "plain"}, "P1")]
    with tally.engine.begin() as conn:
        recorded = tally.store.append(conn, "tally-P1", 0, new, meta("关联", "cause\"'"))
    with tally.engine.connect() as conn:
        stored = conn.execute(sa.select(events.c.data).order_by(events.c.sequence)).scalars().all()
        payloads = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars().all()
        loaded = tally.store.load(conn, "tally-P1")
        assert verify_ledger(conn).intact
    assert stored == [canonical_json(e.data).decode() for e in recorded]
    assert [bytes(p) for p in payloads] == [e.to_json() for e in recorded]
    assert loaded.events == recorded and recorded[0].data["note"] == text


def test_every_read_gives_each_event_back_field_for_field_with_its_position(tally: TallyService) -> None:
    """Reads unpack rows by column order: every field, the position and the optional
    correlation and causation included, comes back where it was written."""
    with tally.engine.begin() as conn:
        recorded = tally.store.append(conn, stream_of("P1"), 0, [added("P1", n) for n in range(1, 5)], meta("c", "d"))
        recorded += tally.store.append(conn, stream_of("P1"), 4, [added("P1", 5)], meta())
        tally.store.save_snapshot(conn, stream_of("P1"), Snapshot("Total.v1", 2, recorded[1].hash, {"total": 3}))

    def fields(envelopes: list) -> list[dict]:  # noqa: ANN001
        return [vars(e) for e in envelopes]

    with tally.engine.connect() as conn:
        assert fields(tally.store.load(conn, stream_of("P1")).events) == fields(recorded)
        from_snapshot = tally.store.load_many(conn, [stream_of("P1")], snapshots={stream_of("P1"): "Total.v1"})
        assert from_snapshot[stream_of("P1")].snapshot == Snapshot("Total.v1", 2, recorded[1].hash, {"total": 3})
        assert fields(from_snapshot[stream_of("P1")].events) == fields(recorded[2:])
        assert fields(tally.store.read_all(conn, batch_size=2)) == fields(recorded)
        assert fields(tally.store.read_stream(conn, stream_of("P1"), after=1)) == fields(recorded[1:])
    assert recorded[0].correlationid == "c" and recorded[0].causationid == "d" and recorded[4].causationid is None
    assert all(e.position for e in recorded)


def test_read_all_returns_every_event_in_recorded_order_across_batches(tally: TallyService) -> None:
    recorded = []
    for n in range(25):
        recorded += tally.add(f"P{n % 4}", n)
    with tally.engine.connect() as conn:
        everything = list(tally.store.read_all(conn, batch_size=6))
        tail = list(tally.store.read_all(conn, after=recorded[9].position, batch_size=6))
        head = tally.store.head_position(conn)
        page = tally.store.read_stream(conn, "tally-P1", after=2, limit=3)
    assert everything == recorded
    assert tail == recorded[10:]
    assert head == recorded[-1].position
    assert [e.sequence for e in page] == [3, 4, 5] and all(e.subject == "P1" for e in page)


def test_events_are_read_through_upcasters_but_stored_and_verified_as_recorded(database_url: str) -> None:
    migrate(database_url)
    old = TallyService(database_url)
    old_events = old.add("P1", 5, times=2)
    old.close()

    upcasters = Upcasters()
    upcasters.register("cn.pension.tally.Added.v1", "cn.pension.tally.Added.v2", lambda d: {"amount_fen": d["amount"]})
    upcasters.register("cn.pension.tally.Added.v2", "cn.pension.tally.Added.v3", lambda d: {**d, "currency": "CNY"})
    new = TallyService(
        database_url, upcasters=upcasters,
        projection=TallyProjection(lambda e: e.data["amount_fen"], handles="cn.pension.tally.Added.v3"),
    )
    try:
        with new.engine.begin() as conn:
            new.store.append(conn, "tally-P1", 2, [NewEvent("Added", {"amount_fen": 7, "currency": "CNY"}, "P1", 3)], meta())
        with new.engine.connect() as conn:
            loaded = new.store.load(conn, "tally-P1").events
            as_recorded = new.store.read_stream(conn, "tally-P1")
            raw = conn.execute(sa.select(events.c.type, events.c.data).order_by(events.c.position)).all()
            assert verify_ledger(conn).intact
        assert [e.type for e in loaded] == ["cn.pension.tally.Added.v3"] * 3
        assert [e.data for e in loaded] == [{"amount_fen": 5, "currency": "CNY"}] * 2 + [{"amount_fen": 7, "currency": "CNY"}]
        assert as_recorded[:2] == old_events
        assert all(e.computed_hash() == e.hash for e in as_recorded)
        assert [r.type for r in raw] == ["cn.pension.tally.Added.v1"] * 2 + ["cn.pension.tally.Added.v3"]
        assert orjson.loads(raw[0].data) == {"amount": 5}
        # the projection, rebuilt from zero, reads the old events through the upcasters
        with new.engine.begin() as conn:
            assert new.store.rebuild_projections(conn) == 3
        assert new.totals() == {"P1": (17, 3)}
    finally:
        new.close()


def test_rebuilding_projections_from_zero_gives_the_same_read_model(tally: TallyService) -> None:
    for n in range(300):
        subject = f"P{(n * 7) % 41}"
        tally.add(subject, (n * 37) % 1000 + 1, times=1 + n % 2)
    with tally.engine.connect() as conn:
        before = snapshot(conn, tally_totals)
    assert len(before) == 41
    assert sum(r[2] for r in before) == tally.count(events) == 450
    # damage the read model (as a bad deploy might), then rebuild it from the ledger
    with tally.engine.begin() as conn:
        conn.execute(tally_totals.update().values(total=0))
        conn.execute(tally_totals.delete().where(tally_totals.c.subject == "P0"))
        conn.execute(tally_totals.insert().values(subject="ghost", total=1, events=1, last_event_id="x"))
    with tally.engine.begin() as conn:
        replayed = tally.store.rebuild_projections(conn, batch_size=64)
    with tally.engine.connect() as conn:
        after = snapshot(conn, tally_totals)
    assert replayed == 450
    assert after == before


def test_a_rebuild_that_fails_leaves_the_old_read_model(tally: TallyService) -> None:
    tally.add("P1", 5)
    tally.add("P2", 6)

    class Exploding(TallyProjection):
        def apply(self, conn, event):  # noqa: ANN001, ANN201
            if event.subject == "P2":
                raise RuntimeError("bug in the new projection code")
            super().apply(conn, event)

    broken = EventStore(service="tally", topic="pension.tally", projections=[Exploding()])
    with pytest.raises(RuntimeError), tally.engine.begin() as conn:
        broken.rebuild_projections(conn)
    assert tally.totals() == {"P1": (5, 1), "P2": (6, 1)}


def test_stream_ids_and_subjects_are_independent_streams(tally: TallyService) -> None:
    tally.add("P1", 1)
    tally.add("P2", 2)
    tally.add("P1", 3)
    with tally.engine.connect() as conn:
        assert [e.sequence for e in tally.store.load(conn, stream_of("P1")).events] == [1, 2]
        assert [e.sequence for e in tally.store.load(conn, stream_of("P2")).events] == [1]


def test_the_position_a_command_reports_is_that_of_its_own_last_event(tally) -> None:  # noqa: ANN001
    tally.add("P1", 1)
    with tally.engine.begin() as conn:
        before = tally.store.head_position(conn)
        stream = tally.store.load(conn, stream_of("P2"))
        mine = tally.store.append(conn, stream.stream_id, stream.version, [added("P2", 5), added("P2", 6)], meta())
        later = tally.add("P3", 7) if tally.backend == "postgresql" else []  # another writer commits meanwhile
        assert tally.store.head_position(conn) == mine[-1].position
    assert before == 1 and mine[-1].position == 3
    assert all(e.position > mine[-1].position for e in later)
    with tally.engine.begin() as conn:  # a new transaction that appended nothing sees the newest
        assert tally.store.head_position(conn) == (later[-1].position if later else 3)


def test_appending_after_the_head_of_an_existing_stream_chains_on_its_last_event(tally) -> None:  # noqa: ANN001
    first = tally.add("P1", 1, times=2)
    with tally.engine.begin() as conn:
        [recorded] = tally.store.append_to_existing(conn, stream_of("P1"), [added("P1", 9)], meta())
        with pytest.raises(LookupError):
            tally.store.append_to_existing(conn, stream_of("NOBODY"), [added("NOBODY", 1)], meta())
    assert (recorded.sequence, recorded.prevhash) == (3, first[-1].hash)
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact
    assert tally.totals()["P1"] == (11, 3)


def test_events_appended_together_take_positions_and_outbox_rows_in_sequence_order(tally: TallyService) -> None:
    with tally.engine.begin() as conn:
        recorded = tally.store.append(conn, "tally-P1", 0, [added("P1", n) for n in range(1, 6)], meta())
    assert [e.sequence for e in recorded] == [1, 2, 3, 4, 5]
    assert [e.position for e in recorded] == sorted(e.position for e in recorded)
    with tally.engine.connect() as conn:
        stored = conn.execute(sa.select(events.c.event_id, events.c.position).order_by(events.c.sequence)).all()
        published = conn.execute(sa.select(outbox.c.event_id).order_by(outbox.c.id)).scalars().all()
    assert [(r.event_id, r.position) for r in stored] == [(e.id, e.position) for e in recorded]
    assert published == [e.id for e in recorded]
    # A stale append writes nothing: no event, no head move, no outbox row.
    with pytest.raises(ConcurrencyConflict), tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", 3, [added("P1", 9), added("P1", 10)], meta())
    assert tally.count(events) == tally.count(outbox) == 5


@pytest.mark.parametrize("streams", [1, 2, 5])
def test_an_append_looks_its_streams_heads_up_by_their_index(pg_tally: TallyService, streams: int) -> None:
    """However few streams the ledger holds (2,000 here): the append's heads are found through
    the primary key, not by scanning and hashing every head (its plan did, below some thousands
    of streams, taking a document's heads for the hundred rows estimated of any function)."""
    with pg_tally.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO stream_heads (stream_id, version, head_hash) "
                             "SELECT 'elsewhere-' || n, 1, md5(n::text) FROM generate_series(1, 2000) AS n")
        conn.exec_driver_sql("ANALYZE stream_heads")
    subjects = [f"P{n}" for n in range(streams)]
    for subject in subjects:
        pg_tally.add(subject, 1)
    appends: list[tuple[str, dict]] = []
    sa.event.listen(pg_tally.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, parameters, *_: appends.append((statement, parameters))
                    if statement.startswith("WITH heads") else None)
    with pg_tally.engine.begin() as conn, pg_tally.store.deferred(conn):  # the heads in one statement
        for stream in pg_tally.store.load_many(conn, [stream_of(s) for s in subjects]).values():
            pg_tally.store.append_to(conn, stream, [added(stream.stream_id.removeprefix("tally-"), 2)], meta())
    [(statement, parameters)] = appends[-1:]
    with pg_tally.engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
    assert "Seq Scan on stream_heads" not in plan, plan
    assert "Index Scan using stream_heads_pkey on stream_heads" in plan, plan
    assert pg_tally.totals() == {s: (3, 2) for s in subjects}
