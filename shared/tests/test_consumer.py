"""The inbox consumer on the embedded log, with its inbox on both database backends."""

import threading
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from pension_shared.consumer import InboxConsumer, InfrastructureUnavailable
from pension_shared.envelope import Envelope, Upcasters
from pension_shared.errors import ConcurrencyConflict
from pension_shared.messaging import OutgoingRecord, dlq_topic
from pension_shared.messaging.embedded import EmbeddedLog
from pension_shared.relay import OutboxRelay
from pension_shared.schema import events, inbox, read_positions
from pension_shared.ledger import NewEvent
from shared_support.tally import ADDED, TallyService, meta, received, receive, stream_of

pytestmark = pytest.mark.postgres

TOPIC = "pension.tally"


@pytest.fixture
def log(tmp_path: Path) -> EmbeddedLog:
    log = EmbeddedLog(tmp_path / "log.db", partitions=3)
    log.migrate()
    yield log
    log.close()


def consumer_for(log: EmbeddedLog, tally: TallyService, policies: dict | None = None, *, group: str = "tally-consumer",
                 max_attempts: int = 3, upcasters: Upcasters | None = None) -> InboxConsumer:
    return InboxConsumer(
        name=group, engine=tally.engine, subscription=log.subscribe(group_id=group, topics=[TOPIC]),
        policies=policies if policies is not None else {ADDED: receive}, dead_letters=log.publisher(),
        max_attempts=max_attempts, upcasters=upcasters, ledgers={TOPIC: "tally"},
    )


def drain(consumer: InboxConsumer) -> dict[str, int]:
    totals = {"processed": 0, "duplicates": 0, "ignored": 0, "dead_lettered": 0}
    while True:
        outcome = consumer.consume_once(timeout_s=0.05)
        counts = outcome.__dict__
        if not any(counts.values()):
            return totals
        for name, value in counts.items():
            totals[name] += value


def dead_letters(log: EmbeddedLog) -> list[dict]:
    sub = log.subscribe(group_id="dlq-reader", topics=[dlq_topic(TOPIC)])
    return [orjson.loads(r.value) for r in sorted(sub.poll(0.1, 1000), key=lambda r: (r.partition, r.offset))]


def test_relay_then_consumer_applies_every_event_once(tally: TallyService, log: EmbeddedLog) -> None:
    for n in range(12):
        tally.add(f"P{n % 4}", n + 1)
    assert OutboxRelay(tally.engine, log.publisher()).relay_once() == 12
    consumer = consumer_for(log, tally)
    assert drain(consumer)["processed"] == 12
    expected = tally.totals()  # (not inside another connection: on SQLite each transaction holds the write lock)
    with tally.engine.connect() as conn:
        assert received(conn) == expected


def test_a_duplicate_delivery_is_recognised_by_the_inbox_and_has_no_second_effect(tally: TallyService, log: EmbeddedLog) -> None:
    [event] = tally.add("P1", 9)
    for _ in range(3):
        log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())])
    totals = drain(consumer_for(log, tally))
    assert (totals["processed"], totals["duplicates"]) == (1, 2)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (9, 1)}
        [row] = conn.execute(sa.select(inbox)).all()  # the first copy's
        assert (row.consumer, row.event_id, row.topic, row.offset, row.processed_at is not None) == (
            "tally-consumer", event.id, TOPIC, 0, True)


def test_each_consumer_keeps_its_own_inbox(tally: TallyService, log: EmbeddedLog) -> None:
    [event] = tally.add("P1", 9)
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())])
    assert drain(consumer_for(log, tally, group="a"))["processed"] == 1
    assert drain(consumer_for(log, tally, group="b"))["processed"] == 1
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (18, 2)}


def test_events_without_a_policy_are_ignored_without_an_inbox_row(tally: TallyService, log: EmbeddedLog) -> None:
    [event] = tally.add("P1", 9)
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())] * 2)
    totals = drain(consumer_for(log, tally, policies={}))
    # No effect to keep from happening twice: both copies ignored, nothing written.
    assert (totals["ignored"], totals["duplicates"]) == (2, 0)
    with tally.engine.connect() as conn:
        assert received(conn) == {}
        assert conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one() == 0


def _picky(conn: Connection, event: Envelope) -> None:
    if event.subject == "POISON":
        raise KeyError("no such product")
    receive(conn, event)


def test_poison_messages_go_to_the_dlq_with_their_error_and_do_not_block_others(tally: TallyService, tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path / "one-partition.db", partitions=1)
    log.migrate()
    [good1] = tally.add("P1", 1)
    [poison] = tally.add("POISON", 2)
    [good2] = tally.add("P2", 3)
    log.publisher().publish([
        OutgoingRecord(TOPIC, "P1", good1.to_json()), OutgoingRecord(TOPIC, "X", b"\x00\x01 binary junk"),
        OutgoingRecord(TOPIC, "X", b'{"specversion": "1.0"}'), OutgoingRecord(TOPIC, "POISON", poison.to_json()),
        OutgoingRecord(TOPIC, "P2", good2.to_json()),
    ])
    consumer = consumer_for(log, tally, {ADDED: _picky}, max_attempts=3)
    totals = drain(consumer)
    assert (totals["processed"], totals["dead_lettered"]) == (2, 3)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (1, 1), "P2": (3, 1)}
    junk, incomplete, parked = dead_letters(log)
    assert junk["error"].startswith("malformed event: not JSON") and junk["offset"] == 1
    assert incomplete["error"].startswith("malformed event: missing attributes: id, source")
    assert incomplete["value"] == '{"specversion": "1.0"}'
    assert parked["error"] == "KeyError: 'no such product'" and parked["attempts"] == 3
    assert parked["event_id"] == poison.id and parked["value"].encode() == poison.to_json()
    # all five were committed: a restarted consumer of the group starts after them
    assert drain(consumer_for(log, tally, {ADDED: _picky})) == {"processed": 0, "duplicates": 0, "ignored": 0, "dead_lettered": 0}
    log.close()


def test_a_conflict_that_clears_on_retry_is_not_dead_lettered(tally: TallyService, log: EmbeddedLog) -> None:
    [event] = tally.add("P1", 4)
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())])
    calls = []

    def contended(conn: Connection, e: Envelope) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrencyConflict("busy", stream_id="x")
        receive(conn, e)

    totals = drain(consumer_for(log, tally, {ADDED: contended}, max_attempts=3))
    assert (totals["processed"], totals["dead_lettered"]) == (1, 0)
    assert len(calls) == 3


def test_a_database_outage_is_not_the_messages_fault_it_is_redelivered_not_dead_lettered(
    tally: TallyService, log: EmbeddedLog,
) -> None:
    events = [tally.add("P1", n)[0] for n in (1, 2, 3)]
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", e.to_json()) for e in events])
    outage = {"on": True}

    def fragile(conn: Connection, e: Envelope) -> None:
        if outage["on"] and e.data["amount"] == 2:
            raise OperationalError("UPDATE tally_received", {}, Exception("server closed the connection"))
        receive(conn, e)

    consumer = consumer_for(log, tally, {ADDED: fragile})
    with pytest.raises(InfrastructureUnavailable):
        consumer.consume_once(timeout_s=0.1)
    outage["on"] = False
    totals = drain(consumer)
    assert (totals["processed"], totals["dead_lettered"], totals["duplicates"]) == (2, 0, 0)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (6, 3)}
    assert dead_letters(log) == []


def _commits_fail_while(consumer: InboxConsumer, outage: dict[str, bool]) -> None:
    """The consumer's offset commits fail while ``outage["on"]``: the broker is unreachable."""
    subscription = consumer._subscription
    commit = subscription.commit

    def broker_gone(records) -> None:  # noqa: ANN001
        if outage["on"]:
            raise ConnectionError("the broker is unreachable")
        commit(records)

    subscription.commit = broker_gone


def test_a_database_outage_while_the_broker_is_gone_too_loses_nothing(tally: TallyService, log: EmbeddedLog) -> None:
    """Found by ``make chaos``: when the database failed mid-batch and the offset commit failed
    as well, the rest of the batch was never sought back, so the consumer went on past it."""
    events = [tally.add("P1", n)[0] for n in (1, 2, 3)]
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", e.to_json()) for e in events])
    outage = {"on": True}

    def fragile(conn: Connection, e: Envelope) -> None:
        if outage["on"] and e.data["amount"] == 2:
            raise OperationalError("UPDATE tally_received", {}, Exception("server closed the connection"))
        receive(conn, e)

    consumer = consumer_for(log, tally, {ADDED: fragile})
    _commits_fail_while(consumer, outage)
    with pytest.raises(InfrastructureUnavailable):
        consumer.consume_once(timeout_s=0.1)
    outage["on"] = False
    drain(consumer)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (6, 3)}
    assert dead_letters(log) == []


def test_offsets_the_broker_did_not_take_are_committed_at_a_later_poll_with_nothing_new(
        tally: TallyService, log: EmbeddedLog) -> None:
    """Found by ``make chaos``: the batch applied, its commit failed (a broker restart), and no
    record came on that partition again, so the group stayed behind it for good."""
    events = [tally.add("P1", n)[0] for n in (1, 2, 3)]
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", e.to_json()) for e in events])
    consumer = consumer_for(log, tally)
    broker = {"on": True}
    _commits_fail_while(consumer, broker)
    with pytest.raises(ConnectionError):
        consumer.consume_once(timeout_s=0.1)
    assert log.committed("tally-consumer", TOPIC) == {}
    with pytest.raises(ConnectionError):  # still gone: kept again
        consumer.consume_once(timeout_s=0.05)
    broker["on"] = False
    assert consumer.consume_once(timeout_s=0.05).processed == 0  # nothing new, the offsets go anyway
    partition = next(iter(log.committed("tally-consumer", TOPIC)))
    assert log.committed("tally-consumer", TOPIC) == {partition: 3}
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (6, 3)}


def test_the_consumer_reads_old_event_versions_through_upcasters(tally: TallyService, log: EmbeddedLog) -> None:
    [event] = tally.add("P1", 5)
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())])
    upcasters = Upcasters()
    upcasters.register(ADDED, "cn.pension.tally.Added.v2", lambda d: {"amount": d["amount"] * 100, "unit": "fen"})
    seen: list[Envelope] = []

    def newest(conn: Connection, e: Envelope) -> None:
        seen.append(e)
        receive(conn, e)

    totals = drain(consumer_for(log, tally, {"cn.pension.tally.Added.v2": newest}, upcasters=upcasters))
    assert totals["processed"] == 1
    assert seen[0].data == {"amount": 500, "unit": "fen"} and seen[0].id == event.id


def test_the_consumer_loop_runs_until_stopped(tally: TallyService, log: EmbeddedLog) -> None:
    consumer = consumer_for(log, tally)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), kwargs={"error_backoff_s": 0.01})
    thread.start()
    try:
        [event] = tally.add("P1", 5)
        log.publisher().publish([OutgoingRecord(TOPIC, "P1", event.to_json())])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with tally.engine.connect() as conn:
                if received(conn):
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (5, 1)}


def test_an_event_that_its_upcaster_cannot_read_is_dead_lettered_not_blocking(tally: TallyService, tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path / "one-partition.db", partitions=1)
    log.migrate()
    [odd] = tally.add("P1", 1)
    [fine] = tally.add("P2", 2)
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", odd.to_json()), OutgoingRecord(TOPIC, "P2", fine.to_json())])
    upcasters = Upcasters()

    def to_v2(data: dict) -> dict:
        if data["amount"] == 1:
            raise ValueError("amount 1 has no v2 form")
        return data

    upcasters.register(ADDED, "cn.pension.tally.Added.v2", to_v2)
    consumer = consumer_for(log, tally, {"cn.pension.tally.Added.v2": receive}, upcasters=upcasters)
    totals = drain(consumer)
    assert (totals["processed"], totals["dead_lettered"]) == (1, 1)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P2": (2, 1)}
    [letter] = dead_letters(log)
    assert "amount 1 has no v2 form" in letter["error"] and letter["event_id"] == odd.id
    log.close()


def test_a_failure_to_dead_letter_loses_no_message(tally: TallyService, tmp_path: Path) -> None:
    """If parking a message fails (the log is briefly unavailable), neither it nor the messages
    after it in the batch may be skipped: they are handled on the next poll."""
    from pension_shared.messaging import PublishFailed

    log = EmbeddedLog(tmp_path / "one-partition.db", partitions=1)
    log.migrate()
    events = [tally.add(f"P{n}", n)[0] for n in (1, 2, 3)]
    log.publisher().publish([
        OutgoingRecord(TOPIC, "P1", events[0].to_json()), OutgoingRecord(TOPIC, "X", b"garbage"),
        OutgoingRecord(TOPIC, "P2", events[1].to_json()),
    ])

    class FlakyDeadLetters:
        def __init__(self) -> None:
            self.failures = 1

        def publish(self, records) -> None:  # noqa: ANN001
            if self.failures:
                self.failures -= 1
                raise PublishFailed("log unavailable")
            log.publisher().publish(records)

        def close(self) -> None:
            pass

    consumer = InboxConsumer(
        name="c", engine=tally.engine, subscription=log.subscribe(group_id="c", topics=[TOPIC]),
        policies={ADDED: receive}, dead_letters=FlakyDeadLetters(),
    )
    with pytest.raises(PublishFailed):
        consumer.consume_once(timeout_s=0.1)
    log.publisher().publish([OutgoingRecord(TOPIC, "P3", events[2].to_json())])
    totals = drain(consumer)
    assert totals["dead_lettered"] == 1
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (1, 1), "P2": (2, 1), "P3": (3, 1)}
    assert [letter["value"] for letter in dead_letters(log)] == ["garbage"]
    # and the group's committed offset is past everything
    assert log.committed("c", TOPIC) == {0: 4}
    log.close()


def test_a_batch_that_applies_cleanly_takes_one_transaction_and_no_savepoint(tally: TallyService, log: EmbeddedLog) -> None:
    for n in range(20):
        tally.add(f"P{n % 5}", n + 1)
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    statements: list[str] = []
    commits: list[None] = []
    sa.event.listen(tally.engine, "before_cursor_execute", lambda _c, _cur, statement, *_: statements.append(statement))
    sa.event.listen(tally.engine, "commit", lambda _conn: commits.append(None))
    assert drain(consumer_for(log, tally))["processed"] == 20
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    assert len(commits) <= 3  # one per partition's batch at most (3 partitions), not one per record
    expected = tally.totals()
    with tally.engine.connect() as conn:
        assert received(conn) == expected


def test_a_batch_with_a_failing_record_is_applied_again_record_by_record(tally: TallyService, log: EmbeddedLog) -> None:
    """The first pass without savepoints is rolled back whole; the careful pass applies every
    other record exactly once and parks the failing one."""
    events = [tally.add("P1", n)[0] for n in (1, 2, 3, 4)]
    log.publisher().publish([OutgoingRecord(TOPIC, "P1", e.to_json()) for e in events])
    calls: dict[int, int] = {}

    def failing_on_3(conn: Connection, e: Envelope) -> None:
        calls[e.data["amount"]] = calls.get(e.data["amount"], 0) + 1
        if e.data["amount"] == 3:
            raise ValueError("no such account")
        receive(conn, e)

    totals = drain(consumer_for(log, tally, {ADDED: failing_on_3}))
    assert (totals["processed"], totals["dead_lettered"], totals["duplicates"]) == (3, 1, 0)
    with tally.engine.connect() as conn:
        assert received(conn) == {"P1": (7, 3)}
    assert [letter["event_id"] for letter in dead_letters(log)] == [events[2].id]
    assert calls[3] == 1 + 3  # once as it came, then the careful pass's three attempts


CHECKED = "cn.pension.tally.Checked.v1"


def test_a_batch_keeps_the_appends_of_policies_that_read_only_streams_and_writes_them_together(
    tally: TallyService, log: EmbeddedLog,
) -> None:
    """The consumer's own ledger (a second tally service) records every Added it receives by
    appending to its own streams, kept and written at the end of the batch; a Checked event's
    policy reads the read model, so what was kept before it is written first."""
    from pension_shared.consumer import reads_only_streams
    from pension_shared.ledger import NewEvent
    from shared_support.tally import added, meta, stream_of, tally_totals

    ours = TallyService(tally.url, topic="pension.ours")
    seen_totals: list[tuple[str, int]] = []

    @reads_only_streams
    def record(conn: Connection, event: Envelope) -> None:
        stream = ours.store.load(conn, stream_of("copy-" + event.subject))
        ours.store.append(conn, stream.stream_id, stream.version, [added("copy-" + event.subject, event.data["amount"])], meta())

    def check(conn: Connection, event: Envelope) -> None:
        total = conn.execute(sa.select(tally_totals.c.total).where(tally_totals.c.subject == "copy-" + event.subject)).scalar()
        seen_totals.append((event.subject, total))

    with tally.engine.begin() as conn:
        for n in (1, 2, 3):
            stream = tally.store.load(conn, stream_of("P1"))
            tally.store.append(conn, stream.stream_id, stream.version, [added("P1", n)], meta())
        stream = tally.store.load(conn, stream_of("P1"))
        tally.store.append(conn, stream.stream_id, stream.version, [NewEvent("Checked", {}, "P1")], meta())
        stream = tally.store.load(conn, stream_of("P1"))
        tally.store.append(conn, stream.stream_id, stream.version, [added("P1", 10)], meta())
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    statements: list[str] = []
    sa.event.listen(tally.engine, "before_cursor_execute", lambda _c, _cur, statement, *_: statements.append(statement))
    consumer = InboxConsumer(
        name="ours", engine=tally.engine, subscription=log.subscribe(group_id="ours", topics=[TOPIC]),
        policies={ADDED: record, CHECKED: check}, dead_letters=log.publisher(), store=ours.store,
    )
    totals = drain(consumer)
    assert totals["processed"] == 5
    assert seen_totals == [("P1", 6)]  # the three Added before it, written first
    assert ours.totals()["copy-P1"] == (16, 4)
    if tally.backend == "postgresql":  # one append statement before the check, one after it
        assert sum("INSERT INTO events" in s for s in statements) == 2
    with tally.engine.connect() as conn:
        copies = conn.execute(sa.text("SELECT sequence, data FROM events WHERE stream_id = 'tally-copy-P1' ORDER BY sequence")).all()
    assert [tuple(r) for r in copies] == [(1, '{"amount":1}'), (2, '{"amount":2}'), (3, '{"amount":3}'), (4, '{"amount":10}')]



def test_a_batch_reads_ahead_the_streams_and_heads_its_policies_name_in_one_statement_each(
    tally: TallyService, log: EmbeddedLog,
) -> None:
    """A policy that names the stream it loads and one that names the stream it appends to after
    its head: the whole batch's are read before the first record, and each record reads nothing
    more, with the same ledger as record by record. An event its hint cannot name a stream for
    is left to its policy, which reads for itself."""
    from pension_shared.consumer import reads_only_streams
    from pension_shared.ledger import NewEvent
    from pension_shared.verification import verify_ledger
    from shared_support.tally import added, meta, stream_of

    ours = TallyService(tally.url, topic="pension.ours")
    for target in ("S0", "S1", "S2", "S3", "X"):
        ours.add(f"head-{target}", 100)  # the streams the head-reading policy appends to

    @reads_only_streams(streams=lambda event: {stream_of("copy-" + event.subject): None})
    def copy(conn: Connection, event: Envelope) -> None:
        stream_id = stream_of("copy-" + event.subject)
        stream = ours.store.load_many(conn, [stream_id])[stream_id]
        ours.store.append_to(conn, stream, [added("copy-" + event.subject, event.data["amount"])], meta())

    @reads_only_streams(heads=lambda event: [stream_of("head-" + event.data["target"])])
    def note(conn: Connection, event: Envelope) -> None:
        target = "head-" + event.data.get("target", "X")
        ours.store.append_to_existing(conn, stream_of(target), [added(target, 1)], meta())

    noted = "cn.pension.tally.Noted.v1"
    with tally.engine.begin() as conn:
        for n in range(12):
            subject = f"S{n % 4}"
            stream = tally.store.load(conn, stream_of(subject))
            tally.store.append(conn, stream.stream_id, stream.version, [added(subject, n)], meta())
            stream = tally.store.load(conn, stream_of(subject))
            data = {"target": subject} if n != 5 else {}  # the hint cannot name this one's stream
            tally.store.append(conn, stream.stream_id, stream.version, [NewEvent("Noted", data, subject)], meta())
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    reads: list[str] = []

    def note_read(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if statement.lstrip().startswith("SELECT") and ("FROM events" in statement or "FROM stream_heads" in statement):
            reads.append(statement)

    sa.event.listen(tally.engine, "before_cursor_execute", note_read)
    consumer = InboxConsumer(
        name="ours", engine=tally.engine, subscription=log.subscribe(group_id="ours", topics=[TOPIC]),
        policies={ADDED: copy, noted: note}, dead_letters=log.publisher(), store=ours.store, batch_size=100,
    )
    batches, processed = 0, 0  # a batch a poll: none holds more than a hundred records
    while outcome := consumer.consume_once(timeout_s=0.05):
        if not outcome.processed:
            break
        batches, processed = batches + 1, processed + outcome.processed
    assert processed == 24
    assert {s: ours.totals()[f"copy-S{s}"] for s in range(4)} == {
        s: (sum(n for n in range(12) if n % 4 == s), 3) for s in range(4)}
    assert {t: ours.totals()[f"head-{t}"] for t in ("S0", "S1", "S2", "S3", "X")} == {
        "S0": (103, 4), "S1": (102, 3), "S2": (103, 4), "S3": (103, 4), "X": (101, 2)}
    one_by_one = [s for s in reads if " IN " not in s]
    assert len(one_by_one) == 1  # the head of the event the hint could not name
    assert len(reads) - len(one_by_one) <= 2 * batches  # at most one read of streams, one of heads, a batch
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact


def _applied_positions(tally: TallyService) -> dict[tuple[str, str], int]:
    with tally.engine.connect() as conn:
        return {(r.ledger, r.participant_id): r.position for r in conn.execute(sa.select(read_positions))}


def _stored_positions(tally: TallyService) -> dict[str, int]:
    with tally.engine.connect() as conn:
        return dict(conn.execute(sa.select(events.c.subject, sa.func.max(events.c.position)).group_by(events.c.subject)).all())


@pytest.mark.parametrize("policies", [None, {}], ids=["applied", "ignored"])
def test_the_consumer_records_how_far_it_has_applied_the_ledger_of_each_participant(
    tally: TallyService, log: EmbeddedLog, policies: dict | None,
) -> None:
    """Read-your-writes across services (pension_shared.positions): what it applied, and what it
    had no policy for, which a read given a position must not wait for either."""
    for n in range(7):
        tally.add(f"P{n % 3}", n)
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    drain(consumer_for(log, tally, policies))
    stored = _stored_positions(tally)
    assert _applied_positions(tally) == {
        **{("tally", subject): position for subject, position in stored.items()}, ("tally", ""): max(stored.values()),
    }


def test_positions_are_recorded_with_what_a_careful_batch_applied(tally: TallyService, log: EmbeddedLog) -> None:
    tally.add("P1", 1)
    tally.add("POISON", 2)
    tally.add("P2", 3)
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    drain(consumer_for(log, tally, {ADDED: _picky}, max_attempts=1))
    stored = _stored_positions(tally)
    applied = _applied_positions(tally)
    assert applied[("tally", "P1")] == stored["P1"] and applied[("tally", "P2")] == stored["P2"]
    # The parked message is done with too: a read waiting for its position would otherwise wait out.
    assert applied[("tally", "")] == max(stored.values())


def _note(tally: TallyService, subject: str) -> None:
    """A ``Noted`` event on ``subject``'s stream: the type the consumers below act on."""
    with tally.engine.begin() as conn:
        stream = tally.store.load(conn, stream_of(subject))
        tally.store.append(conn, stream.stream_id, stream.version, [NewEvent("Noted", {}, subject)], meta())


def _position_writes(tally: TallyService) -> list[str]:
    writes: list[str] = []
    sa.event.listen(tally.engine, "before_cursor_execute",
                    lambda _c, _k, statement, *_: writes.append(statement) if statement.startswith("INSERT INTO read_positions") else None)
    return writes


def test_the_positions_of_an_ignored_batch_wait_for_the_log_to_have_no_more(tally: TallyService, log: EmbeddedLog) -> None:
    """A batch of only events the consumer has no policy for takes no transaction of its own at
    once: its positions are recorded when a poll finds nothing more (or after POSITIONS_WAIT_S)."""
    for n in range(5):
        tally.add(f"P{n % 2}", n)
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    writes = _position_writes(tally)
    consumer = consumer_for(log, tally, {"cn.pension.tally.Noted.v1": lambda _conn, _event: None})
    assert consumer.consume_once(timeout_s=0.05).ignored == 5
    assert writes == [] and _applied_positions(tally) == {}
    started = time.monotonic()
    assert consumer.consume_once(timeout_s=5.0).ignored == 0  # polls for no longer than the positions may wait
    assert time.monotonic() - started < 2.0
    stored = _stored_positions(tally)
    assert len(writes) == 1
    assert _applied_positions(tally) == {
        **{("tally", subject): position for subject, position in stored.items()}, ("tally", ""): max(stored.values()),
    }


def test_the_positions_of_an_ignored_batch_are_recorded_with_the_next_applied_batch(
    tally: TallyService, log: EmbeddedLog,
) -> None:
    for n in range(4):
        tally.add(f"P{n % 2}", n)
    relay = OutboxRelay(tally.engine, log.publisher())
    relay.relay_once()
    noted: list[str] = []
    consumer = consumer_for(log, tally, {"cn.pension.tally.Noted.v1": lambda _conn, event: noted.append(event.subject)})
    writes = _position_writes(tally)
    assert consumer.consume_once(timeout_s=0.05).ignored == 4
    _note(tally, "P2")
    relay.relay_once()
    assert consumer.consume_once(timeout_s=0.05).processed == 1
    assert noted == ["P2"] and len(writes) == 1  # one statement, in the applied batch's transaction
    stored = _stored_positions(tally)
    assert _applied_positions(tally) == {
        **{("tally", subject): position for subject, position in stored.items()}, ("tally", ""): max(stored.values()),
    }
    assert drain(consumer) == {"processed": 0, "duplicates": 0, "ignored": 0, "dead_lettered": 0}
    assert len(writes) == 1  # nothing was left waiting


def test_the_positions_waiting_are_recorded_when_the_consumer_closes(tally: TallyService, log: EmbeddedLog) -> None:
    tally.add("P1", 1)
    OutboxRelay(tally.engine, log.publisher()).relay_once()
    consumer = consumer_for(log, tally, {})
    assert consumer.consume_once(timeout_s=0.05).ignored == 1
    consumer.close()
    position = _stored_positions(tally)["P1"]
    assert _applied_positions(tally) == {("tally", "P1"): position, ("tally", ""): position}
