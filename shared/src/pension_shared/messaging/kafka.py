"""Apache Kafka adapter (kafka-python)."""

from __future__ import annotations

import functools
import logging
import selectors
import struct
import time
from collections import defaultdict
from typing import Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner
from kafka.structs import OffsetAndMetadata

from pension_shared.messaging import IncomingRecord, OutgoingRecord, PublishFailed

log = logging.getLogger(__name__)


class KeyedPartitioner(DefaultPartitioner):
    """``DefaultPartitioner``'s partition (the Java client's: murmur2 of the key over every
    partition of the topic; a record without a key on one at random), without first listing the
    partitions that have a leader, which only a record without a key uses (for every record,
    that listing was 8 % of a relay's CPU), and with ``murmur2`` reading the key a word at a time,
    once per key among the last ``_KEYS_REMEMBERED``: the key is the event's subject, and a
    command's events, and those it causes in other services, share it."""

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):  # noqa: ANN001, ANN201
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        return ordered[(_key_hash(serialized_key) & 0x7FFFFFFF) % len(ordered)]


_M, _SEED = 0x5BD1E995, 0x9747B28C


def murmur2(data: bytes) -> int:
    """MurmurHash2 as the Java client computes it (``Utils.murmur2``) and kafka-python's
    ``murmur2`` does, equal to it for every input, with the key's 32-bit words unpacked at once
    rather than assembled byte by byte: a third of the Python for a participant id."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        if tail >= 3:
            h ^= data[words * 4 + 2] << 16
        if tail >= 2:
            h ^= data[words * 4 + 1] << 8
        h ^= data[words * 4]
        h = (h * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


_KEYS_REMEMBERED = 1 << 16
_key_hash = functools.lru_cache(maxsize=_KEYS_REMEMBERED)(murmur2)
"""``murmur2`` of a key, remembered: 0.24 µs for a key seen lately against 5.4 µs computed."""


class _Selector(selectors.DefaultSelector):
    """The standard selector, whose ``get_key`` of a file that is not registered raises a bare
    ``KeyError``. kafka-python registers a broker connection's socket for each wait to read or
    write and unregisters it after, so it asks for the key of an unregistered socket about once a
    publish; the standard selector formats ``repr(socket)`` (two system calls) into that error,
    twice: 30.8 µs a miss against 1.4 µs here, 3 % of the fund-account relay's CPU. Keys are found
    by the object registered, as kafka-python asks (a file descriptor given as a number, or a
    closed selector: as the standard one)."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[object, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None):  # noqa: ANN001, ANN201
        key = super().register(fileobj, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj):  # noqa: ANN001, ANN201
        key = super().unregister(fileobj)
        self._keys.pop(key.fileobj, None)
        return key

    def modify(self, fileobj, events, data=None):  # noqa: ANN001, ANN201
        key = super().modify(fileobj, events, data)
        self._keys[key.fileobj] = key
        return key

    def get_key(self, fileobj):  # noqa: ANN001, ANN201
        key = self._keys.get(fileobj)
        if key is not None:
            return key
        if isinstance(fileobj, int) or self.get_map() is None:  # the latter: "Selector is closed"
            return super().get_key(fileobj)
        raise KeyError("not registered")

    def close(self) -> None:
        super().close()
        self._keys.clear()


class KafkaPublisher:
    """Publishes with an idempotent producer. After a failed publish the producer is closed and a
    new one made for the next attempt: once its batches have expired (the broker unreachable for
    longer than the delivery timeout), kafka-python's idempotent producer can stay wedged, every
    later flush timing out (found by ``make chaos``). The caller publishes the same records
    again; the consumers' inboxes drop what arrives twice."""

    def __init__(self, bootstrap: str, *, client_id: str = "pension", timeout_s: float = 30.0) -> None:
        self._timeout_s = timeout_s
        self._settings = dict(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            retries=2**31 - 1,
            linger_ms=2,
            partitioner=KeyedPartitioner(),
            selector=_Selector,
            request_timeout_ms=int(timeout_s * 1000),
            # kafka-python's own client metrics (read by nobody here: the services export
            # theirs) cost the relay about a tenth of its CPU, recorded per record and request.
            metrics_enabled=False,
        )
        self._producer: KafkaProducer | None = KafkaProducer(**self._settings)

    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        if self._producer is None:
            self._producer = KafkaProducer(**self._settings)
        producer = self._producer
        try:
            futures = [
                producer.send(
                    r.topic, key=r.key.encode() if r.key is not None else None, value=r.value, headers=list(r.headers),
                )
                for r in records
            ]
            producer.flush(timeout=self._timeout_s)
            for future in futures:
                future.get(timeout=self._timeout_s)
        except KafkaError as exc:
            log.warning("publish failed (%s); the producer is replaced for the next attempt", type(exc).__name__)
            self._producer = None
            producer.close(timeout=0)
            raise PublishFailed(str(exc)) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


class KafkaSubscription:
    def __init__(
        self, bootstrap: str, *, group_id: str, topics: Sequence[str], client_id: str = "pension",
        partitions_timeout_s: float = 10.0,
    ) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            selector=_Selector,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            # A fetch is answered when 64 KiB are waiting or after 250 ms, so a consumer asks the
            # broker 4 times a second, loaded or idle. Each fetch costs kafka-python about 3 ms of
            # CPU and the broker about 1.6 ms, whatever it brings (36 partitions for a consumer of
            # three topics of 12): at 100 ms, the four consumers' fetches alone took a tenth of
            # the bench's two cores. 250 ms costs a hop at most 150 ms more when the load is light
            # and lowers the end-to-end latency under load (the machine less busy, larger batches).
            fetch_min_bytes=1 << 16,
            fetch_max_wait_ms=250,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            # A subscribed topic created after the group's assignment is found (and the group
            # rebalanced onto it) at the next metadata refresh: within 30 s rather than 5 minutes.
            metadata_max_age_ms=30_000,
            metrics_enabled=False,  # as the publisher's
        )
        _await_partitions(self._consumer, topics, timeout_s=partitions_timeout_s)
        self._consumer.subscribe(list(topics))

    def poll(self, timeout_s: float, max_records: int) -> list[IncomingRecord]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        records = [
            IncomingRecord(
                topic=m.topic, partition=m.partition, offset=m.offset,
                key=m.key.decode() if m.key is not None else None, value=m.value,
                headers=tuple(m.headers) if m.headers else (),
            )
            for batch in batches.values()
            for m in batch
        ]
        return records

    def commit(self, records: Sequence[IncomingRecord]) -> None:
        if not records:
            return
        highest: dict[TopicPartition, int] = defaultdict(lambda: -1)
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            highest[tp] = max(highest[tp], r.offset)
        self._consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in highest.items()})

    def seek_back(self, records: Sequence[IncomingRecord]) -> None:
        """Redeliver from the first of these records of each partition (after a failed batch)."""
        lowest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            lowest[tp] = min(lowest.get(tp, r.offset), r.offset)
        for tp, offset in lowest.items():
            try:
                self._consumer.seek(tp, offset)
            except Exception:  # no longer assigned here: its new owner starts from the committed offset
                log.warning("could not seek %s[%d] back to %d: not assigned any more", tp.topic, tp.partition, offset)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def _await_partitions(consumer: KafkaConsumer, topics: Sequence[str], *, timeout_s: float) -> None:
    """Wait until the consumer's own metadata has every partition of ``topics``, before it joins
    its group. Subscribed at once, it joins while its first metadata request is in flight: the
    leader assigns without the topics' partitions ("No partition metadata") and the group is only
    rebalanced onto them after a later metadata response, which a busy machine delays by seconds.
    A topic not found within ``timeout_s`` (not created yet) is subscribed to all the same; the
    group is rebalanced onto it at a metadata refresh after its creation."""
    deadline = time.monotonic() + timeout_s
    missing = list(topics)
    while missing := [topic for topic in missing if not consumer.partitions_for_topic(topic)]:
        if time.monotonic() >= deadline:
            log.warning("topics %s have no partitions yet; subscribing all the same", ", ".join(missing))
            return
        time.sleep(0.1)


def ensure_topics(
    bootstrap: str, topics: Sequence[str], *, partitions: int, replication_factor: int = 1, timeout_s: float = 30.0,
) -> None:
    """Create the topics if they do not exist (infinite retention: they are ledgers), and return
    once every partition of each has a leader. The broker acknowledges a creation before its
    metadata has the new topic: a consumer group assigned in between gets no partition of it
    ("No partition metadata") and would only find it at its next metadata refresh."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="pension-admin", request_timeout_ms=int(timeout_s * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor, topic_configs={"retention.ms": "-1"})
            for t in topics if t not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass
        admin.wait_for_topics(list(topics), timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()
