"""The transactional outbox and its relay (without a broker: an in-memory log)."""

import threading
import time

import pytest
import sqlalchemy as sa

from pension_shared.envelope import parse_cloudevent
from pension_shared.messaging import PublishFailed
from pension_shared.relay import OutboxRelay
from pension_shared.schema import events, outbox
from shared_support.tally import RecordingPublisher, TallyService, added, meta

pytestmark = pytest.mark.postgres


def test_the_relay_publishes_each_outbox_row_keyed_by_subject_and_marks_it(tally: TallyService) -> None:
    recorded = tally.add("P1", 1, times=2) + tally.add("P2", 2)
    log = RecordingPublisher()
    relay = OutboxRelay(tally.engine, log)
    assert relay.backlog() == 3
    assert relay.relay_once() == 3
    assert relay.relay_once() == 0
    assert relay.backlog() == 0
    assert [(r.topic, r.key) for r in log.records] == [("pension.tally", "P1"), ("pension.tally", "P1"), ("pension.tally", "P2")]
    assert [parse_cloudevent(r.value) for r in log.records] == recorded
    with tally.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))).scalar_one() == 0


def test_each_record_carries_its_events_position_in_the_ledger(tally: TallyService) -> None:
    recorded = tally.add("P1", 1, times=2) + tally.add("P2", 2)
    log = RecordingPublisher()
    OutboxRelay(tally.engine, log).relay_once()
    with tally.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(events.c.event_id, events.c.position)).all())
    assert [dict(r.headers)["position"] for r in log.records] == [b"%d" % stored[e.id] for e in recorded]


def test_the_relay_publishes_in_batches_in_id_order(tally: TallyService) -> None:
    for n in range(10):
        tally.add(f"P{n % 3}", n)
    log = RecordingPublisher()
    relay = OutboxRelay(tally.engine, log, batch_size=4)
    assert [relay.relay_once() for _ in range(4)] == [4, 4, 2, 0]
    assert [parse_cloudevent(r.value).data["amount"] for r in log.records] == list(range(10))


class FailingPublisher(RecordingPublisher):
    def publish(self, records):  # noqa: ANN001, ANN201
        raise PublishFailed("broker down")


def test_a_failed_publish_leaves_the_rows_for_the_next_attempt(tally: TallyService) -> None:
    tally.add("P1", 1)
    with pytest.raises(PublishFailed):
        OutboxRelay(tally.engine, FailingPublisher()).relay_once()
    log = RecordingPublisher()
    assert OutboxRelay(tally.engine, log).relay_once() == 1 and len(log.records) == 1


def test_a_relay_killed_between_publish_and_mark_publishes_again(tally: TallyService) -> None:
    tally.add("P1", 1, times=3)
    log = RecordingPublisher()

    def die(ids):  # noqa: ANN001, ANN202
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        OutboxRelay(tally.engine, log, after_publish=die).relay_once()
    assert len(log.records) == 3
    assert OutboxRelay(tally.engine, log).relay_once() == 3
    assert len(log.records) == 6
    assert [r.value for r in log.records[:3]] == [r.value for r in log.records[3:]]


def test_the_relay_loop_outlives_a_broker_outage(tally: TallyService) -> None:
    tally.add("P1", 1)
    attempts = []

    class FlakyPublisher(RecordingPublisher):
        def publish(self, records):  # noqa: ANN001, ANN201
            attempts.append(len(records))
            if len(attempts) < 3:
                raise PublishFailed("broker down")
            super().publish(records)

    log = FlakyPublisher()
    relay = OutboxRelay(tally.engine, log)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_s": 0.01, "error_backoff_s": 0.01})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while relay.backlog() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(log.records) == 1 and len(attempts) >= 3


def test_outbox_rows_and_events_commit_or_roll_back_together(tally: TallyService) -> None:
    with pytest.raises(RuntimeError), tally.engine.begin() as conn:
        tally.store.append(conn, "tally-P1", 0, [added("P1", 1)], meta())
        raise RuntimeError("rolled back")
    log = RecordingPublisher()
    assert OutboxRelay(tally.engine, log).relay_once() == 0
    assert tally.count("events") == tally.count("outbox") == 0


def test_a_row_that_commits_after_a_higher_id_was_published_is_still_published(pg_tally: TallyService) -> None:
    """Insert order is not commit order: transaction A takes the lower outbox id but commits
    after B's higher id has already been relayed. Nothing may be lost."""
    tally = pg_tally
    log = RecordingPublisher()
    relay = OutboxRelay(tally.engine, log)

    conn_a = tally.engine.connect()
    tx_a = conn_a.begin()
    [event_a] = tally.store.append(conn_a, "tally-A", 0, [added("A", 1)], meta())
    id_a = conn_a.execute(sa.select(outbox.c.id).where(outbox.c.event_id == event_a.id)).scalar_one()
    try:
        [event_b] = tally.add("B", 2)  # commits, with a higher outbox id
        with tally.engine.connect() as conn:
            id_b = conn.execute(sa.select(outbox.c.id).where(outbox.c.event_id == event_b.id)).scalar_one()
        assert id_a < id_b
        assert relay.relay_once() == 1
        assert [parse_cloudevent(r.value).id for r in log.records] == [event_b.id]
        tx_a.commit()
    finally:
        conn_a.close()
    assert relay.relay_once() == 1
    assert [parse_cloudevent(r.value).id for r in log.records] == [event_b.id, event_a.id]
    assert relay.backlog() == 0


def test_an_uncommitted_outbox_row_is_invisible_to_the_relay_and_rolled_back_rows_never_appear(pg_tally: TallyService) -> None:
    tally = pg_tally
    log = RecordingPublisher()
    relay = OutboxRelay(tally.engine, log)
    with tally.engine.connect() as conn_a:
        tx_a = conn_a.begin()
        tally.store.append(conn_a, "tally-A", 0, [added("A", 1)], meta())
        tally.add("B", 2)
        assert relay.relay_once() == 1
        tx_a.rollback()
    assert relay.relay_once() == 0
    assert [r.key for r in log.records] == ["B"]


def test_two_relays_at_once_lose_nothing(pg_tally: TallyService) -> None:
    """Two relay processes may both publish a row (at least once), but every row is published."""
    tally = pg_tally
    recorded = []
    for n in range(40):
        recorded += tally.add(f"P{n % 5}", n)
    log = RecordingPublisher()
    relays = [OutboxRelay(tally.engine, log, batch_size=7) for _ in range(2)]

    def drain(relay: OutboxRelay) -> None:
        while relay.relay_once():
            pass

    threads = [threading.Thread(target=drain, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {parse_cloudevent(r.value).id for r in log.records} == {e.id for e in recorded}
    assert relays[0].backlog() == 0


def _running(relay: OutboxRelay, **kwargs: float) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs=kwargs)
    thread.start()
    return stop, thread


def _published_within(log: RecordingPublisher, count: int, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if len(log.records) >= count:
            return time.monotonic() - started
        time.sleep(0.005)
    return None


def test_an_idle_relay_is_woken_by_the_commit_of_an_append(pg_tally: TallyService) -> None:
    """It does not poll while idle: with no notification it would look again only after
    ``quiet_s`` (a minute here), yet each commit is published at once."""
    log = RecordingPublisher()
    stop, thread = _running(OutboxRelay(pg_tally.engine, log), idle_s=0.01, quiet_s=60)
    try:
        time.sleep(0.3)  # the relay has looked, found nothing, and sleeps
        for n in range(1, 4):
            pg_tally.add("P1", n)
            assert _published_within(log, n, 5) is not None, f"append {n} not published within 5 s"
            time.sleep(0.1)
        with pytest.raises(RuntimeError), pg_tally.engine.begin() as conn:  # a rollback notifies no one
            pg_tally.store.append(conn, "tally-P9", 0, [added("P9", 1)], meta())
            raise RuntimeError("rolled back")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert [parse_cloudevent(r.value).data["amount"] for r in log.records] == [1, 2, 3]


def test_an_idle_relay_told_to_stop_stops_without_waiting_for_a_notification(pg_tally: TallyService) -> None:
    stop, thread = _running(OutboxRelay(pg_tally.engine, RecordingPublisher()), idle_s=0.01, quiet_s=60)
    time.sleep(0.3)  # idle, waiting up to a minute for a notification
    told = time.monotonic()
    stop.set()
    thread.join(5)

    assert not thread.is_alive()
    assert time.monotonic() - told < 2.0, "it looks whether it was told to stop every second"


def test_a_relay_whose_listening_connection_is_killed_still_publishes_everything(pg_tally: TallyService) -> None:
    log = RecordingPublisher()
    stop, thread = _running(OutboxRelay(pg_tally.engine, log), idle_s=0.01, quiet_s=60)
    try:
        time.sleep(0.3)
        with pg_tally.engine.connect() as conn:
            killed = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
            )).scalar_one()
        assert killed == 1
        pg_tally.add("P1", 1)
        assert _published_within(log, 1, 5) is not None  # polled, then listening again
        time.sleep(0.3)
        pg_tally.add("P1", 2)
        assert _published_within(log, 2, 5) is not None
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
