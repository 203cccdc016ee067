"""The relay, the inbox consumer and the dead-letter topic against the real Kafka broker."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.consumer import InboxConsumer
from pension_shared.envelope import Envelope, parse_cloudevent
from pension_shared.messaging import OutgoingRecord, dlq_topic
from pension_shared.messaging.kafka import KafkaPublisher, KafkaSubscription, ensure_topics
from pension_shared.relay import OutboxRelay
from pension_shared.schema import inbox
from pension_shared.testing import random_id
from shared_support.kafka_helpers import consume_until, read_topic
from shared_support.tally import ADDED, TallyService, received, receive

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

TESTS = Path(__file__).parent


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = random_id("test.tally.")
    ensure_topics(kafka_bootstrap, [name, dlq_topic(name)], partitions=3)
    return name


@pytest.fixture
def single_partition_topic(kafka_bootstrap: str) -> str:
    name = random_id("test.tally1.")
    ensure_topics(kafka_bootstrap, [name, dlq_topic(name)], partitions=1)
    return name


@pytest.fixture
def publisher(kafka_bootstrap: str):
    publisher = KafkaPublisher(kafka_bootstrap, client_id=random_id("test-pub-"))
    yield publisher
    publisher.close()


@pytest.fixture
def consumers(kafka_bootstrap: str):
    """Makes inbox consumers on a database; closes them (and their DLQ publishers) afterwards."""
    made: list[tuple[InboxConsumer, KafkaPublisher]] = []

    def make(engine: sa.Engine, topic: str, policies: dict | None = None, *, group: str | None = None,
             max_attempts: int = 3) -> InboxConsumer:
        group = group or random_id("test-group-")
        dead_letters = KafkaPublisher(kafka_bootstrap, client_id=f"{group}-dlq")
        consumer = InboxConsumer(
            name=group, engine=engine,
            subscription=KafkaSubscription(kafka_bootstrap, group_id=group, topics=[topic], client_id=group),
            policies=policies if policies is not None else {ADDED: receive},
            dead_letters=dead_letters, max_attempts=max_attempts,
        )
        made.append((consumer, dead_letters))
        return consumer

    yield make
    for consumer, dead_letters in made:
        consumer.close()
        dead_letters.close()


def producer_on(postgres_url: str, topic: str) -> TallyService:
    from shared_support.tally import migrate

    migrate(postgres_url)
    return TallyService(postgres_url, topic=topic)


def inbox_rows(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(inbox)).all()


def test_the_relay_publishes_keyed_by_subject_and_the_consumer_applies_each_event_once(
    postgres_url: str, sqlite_tally: TallyService, topic: str, kafka_bootstrap: str, publisher: KafkaPublisher, consumers,
) -> None:
    producer = producer_on(postgres_url, topic)
    try:
        recorded = []
        for n in range(30):
            recorded += producer.add(f"P{n % 6}", n + 1)
        relay = OutboxRelay(producer.engine, publisher)
        assert relay.relay_once() == 30 and relay.backlog() == 0

        on_topic = read_topic(kafka_bootstrap, topic, expected=30)
        assert len(on_topic) == 30
        assert sorted(r.value for r in on_topic) == sorted(e.to_json() for e in recorded)
        partitions_by_key: dict[bytes, set[int]] = {}
        for r in on_topic:
            assert r.key == parse_cloudevent(r.value).subject.encode()
            partitions_by_key.setdefault(r.key, set()).add(r.partition)
        assert all(len(p) == 1 for p in partitions_by_key.values())  # one key, one partition: ordered
        for key in partitions_by_key:  # and in stream order within it
            sequences = [parse_cloudevent(r.value).sequence for r in sorted(on_topic, key=lambda r: r.offset) if r.key == key]
            assert sequences == sorted(sequences)

        consumer = consumers(sqlite_tally.engine, topic)
        totals = consume_until(consumer, lambda t: t.records >= 30)
        assert (totals.processed, totals.duplicates, totals.dead_lettered) == (30, 0, 0)
        with sqlite_tally.engine.connect() as conn:
            assert received(conn) == producer.totals()
        assert {r.event_id for r in inbox_rows(sqlite_tally.engine)} == {e.id for e in recorded}
    finally:
        producer.close()


def test_a_duplicated_delivery_has_exactly_one_effect(
    postgres_url: str, sqlite_tally: TallyService, topic: str, kafka_bootstrap: str, publisher: KafkaPublisher, consumers,
) -> None:
    producer = producer_on(postgres_url, topic)
    try:
        [event] = producer.add("P1", 700)
        OutboxRelay(producer.engine, publisher).relay_once()
        publisher.publish([OutgoingRecord(topic, "P1", event.to_json())])  # the same CloudEvent bytes again
        producer.add("P2", 5)
        OutboxRelay(producer.engine, publisher).relay_once()
        assert len(read_topic(kafka_bootstrap, topic, expected=3)) == 3

        consumer = consumers(sqlite_tally.engine, topic)
        totals = consume_until(consumer, lambda t: t.records >= 3)
        assert (totals.processed, totals.duplicates) == (2, 1)
        with sqlite_tally.engine.connect() as conn:
            assert received(conn) == {"P1": (700, 1), "P2": (5, 1)}
        rows = inbox_rows(sqlite_tally.engine)
        assert len(rows) == 2 and len([r for r in rows if r.event_id == event.id]) == 1
    finally:
        producer.close()


def _poison_policy(conn: Connection, event: Envelope) -> None:
    if event.subject == "POISON":
        raise ValueError(f"participant {event.subject} cannot be handled")
    receive(conn, event)


def test_poison_messages_are_dead_lettered_and_later_messages_of_other_participants_still_processed(
    pg_tally: TallyService, single_partition_topic: str, kafka_bootstrap: str, publisher: KafkaPublisher, consumers,
) -> None:
    topic = single_partition_topic
    producer = TallyService(pg_tally.url, topic=topic)
    try:
        [good1] = producer.add("P1", 1)
        [poison] = producer.add("POISON", 2)
        [good2] = producer.add("P2", 3)
        by_id = {e.id: e for e in (good1, poison, good2)}
        # one partition: the garbage and the poison sit in front of the later good messages
        publisher.publish([OutgoingRecord(topic, "P1", good1.to_json())])
        publisher.publish([OutgoingRecord(topic, "P9", b"{this is not json")])
        publisher.publish([OutgoingRecord(topic, "POISON", poison.to_json())])
        publisher.publish([OutgoingRecord(topic, "P2", good2.to_json())])

        consumer_db = pg_tally.engine  # the consumer keeps its inbox on PostgreSQL here
        with consumer_db.begin() as conn:
            conn.execute(sa.text("DELETE FROM tally_received"))
        consumer = consumers(consumer_db, topic, {ADDED: _poison_policy}, max_attempts=2)
        totals = consume_until(consumer, lambda t: t.records >= 4)
        assert (totals.processed, totals.dead_lettered) == (2, 2)
        with consumer_db.connect() as conn:
            assert received(conn) == {"P1": (1, 1), "P2": (3, 1)}
        assert {r.event_id for r in inbox_rows(consumer_db)} == {good1.id, good2.id}  # the poison's effects rolled back

        letters = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, dlq_topic(topic), expected=2)]
        assert len(letters) == 2
        garbage, parked = letters
        assert garbage["value"] == "{this is not json"
        assert garbage["error"].startswith("malformed event: not JSON")
        assert garbage["event_id"] is None and garbage["key"] == "P9" and garbage["attempts"] == 1
        assert garbage["topic"] == topic and garbage["offset"] == 1
        assert parked["value"].encode() == poison.to_json()
        assert parked["error"] == "ValueError: participant POISON cannot be handled"
        assert parked["event_id"] == poison.id and parked["event_type"] == ADDED
        assert parked["attempts"] == 2 and parked["offset"] == 2 and parked["key"] == "POISON"
        assert by_id[parked["event_id"]] == parse_cloudevent(parked["value"])
    finally:
        producer.close()


def test_dead_lettered_messages_are_committed_and_not_redelivered_to_the_group(
    sqlite_tally: TallyService, single_partition_topic: str, publisher: KafkaPublisher, consumers,
) -> None:
    topic = single_partition_topic
    group = random_id("test-group-")
    publisher.publish([OutgoingRecord(topic, "P9", b"garbage")])
    first = consumers(sqlite_tally.engine, topic, group=group)
    assert consume_until(first, lambda t: t.records >= 1).dead_lettered == 1
    first.close()
    [event] = sqlite_tally.add("P1", 5)
    publisher.publish([OutgoingRecord(topic, "P1", event.to_json())])
    second = consumers(sqlite_tally.engine, topic, group=group)
    totals = consume_until(second, lambda t: t.records >= 1)
    assert (totals.processed, totals.dead_lettered) == (1, 0)  # resumed after the parked garbage


def test_a_relay_killed_between_publish_and_mark_republishes_and_the_consumer_dedupes(
    postgres_url: str, sqlite_tally: TallyService, topic: str, kafka_bootstrap: str, publisher: KafkaPublisher, consumers,
) -> None:
    producer = producer_on(postgres_url, topic)
    try:
        recorded = []
        for n in range(8):
            recorded += producer.add(f"P{n % 3}", 10 + n)
        died = subprocess.run(
            [sys.executable, "-m", "shared_support.killed_relay", postgres_url, kafka_bootstrap],
            cwd=TESTS, env={**os.environ, "PYTHONPATH": str(TESTS)}, capture_output=True, text=True, timeout=120,
        )
        assert died.returncode == 1, died.stderr
        assert "published 8 rows" in died.stdout
        relay = OutboxRelay(producer.engine, publisher)
        assert relay.backlog() == 8  # the kill came before the rows were marked
        assert relay.relay_once() == 8 and relay.backlog() == 0

        on_topic = read_topic(kafka_bootstrap, topic, expected=16)
        assert len(on_topic) == 16  # the topic holds every event twice
        assert sorted(r.value for r in on_topic) == sorted([e.to_json() for e in recorded] * 2)

        consumer = consumers(sqlite_tally.engine, topic)
        totals = consume_until(consumer, lambda t: t.records >= 16)
        assert (totals.processed, totals.duplicates) == (8, 8)
        with sqlite_tally.engine.connect() as conn:
            assert received(conn) == producer.totals()
        assert len(inbox_rows(sqlite_tally.engine)) == 8
    finally:
        producer.close()


def test_a_consumer_restarted_after_a_crash_resumes_without_losing_or_doubling_effects(
    sqlite_tally: TallyService, topic: str, publisher: KafkaPublisher, consumers, postgres_url: str,
) -> None:
    producer = producer_on(postgres_url, topic)
    try:
        for n in range(20):
            producer.add(f"P{n % 4}", n + 1)
        OutboxRelay(producer.engine, publisher).relay_once()
        group = random_id("test-group-")
        first = consumers(sqlite_tally.engine, topic, group=group)
        consume_until(first, lambda t: t.processed >= 1)
        first.close()  # a crash after some commits: offsets may lag the inbox
        second = consumers(sqlite_tally.engine, topic, group=group)
        totals = consume_until(second, lambda t: len(inbox_rows(sqlite_tally.engine)) >= 20)
        assert totals.dead_lettered == 0
        with sqlite_tally.engine.connect() as conn:
            assert received(conn) == producer.totals()
    finally:
        producer.close()


def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient

    name = random_id("test.ensure.")
    ensure_topics(kafka_bootstrap, [name], partitions=2)
    ensure_topics(kafka_bootstrap, [name], partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        [description] = admin.describe_topics([name])
        assert len(description["partitions"]) == 2
    finally:
        admin.close()


def test_a_group_subscribing_as_soon_as_its_topics_are_ensured_is_assigned_every_partition(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The group's first assignment already covers the new topics: none is left without partitions
    until a metadata refresh and a second rebalance (which a busy machine delays)."""
    import time

    names = [random_id("test.fresh.") for _ in range(4)]
    ensure_topics(kafka_bootstrap, names, partitions=3)
    with caplog.at_level(logging.WARNING, logger="kafka.coordinator"):
        subscription = KafkaSubscription(kafka_bootstrap, group_id=random_id("fresh-"), topics=names)
        try:
            deadline = time.monotonic() + 30
            while not subscription._consumer.assignment() and time.monotonic() < deadline:
                subscription.poll(0.2, 10)
            assigned = {(tp.topic, tp.partition) for tp in subscription._consumer.assignment()}
        finally:
            subscription.close()
    assert assigned == {(name, partition) for name in names for partition in range(3)}
    assert not [r.getMessage() for r in caplog.records if "No partition metadata" in r.getMessage()]
