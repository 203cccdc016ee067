"""The publisher's partitioner chooses as kafka-python's default (the Java client's) does."""

from __future__ import annotations

import random

from kafka.partitioner.default import DefaultPartitioner

from pension_shared.messaging.kafka import KeyedPartitioner


class Cluster:
    """The part of kafka-python's ClusterMetadata a partitioner reads: 12 partitions, of which
    the leaderless ones are not available."""

    def __init__(self, leaderless: frozenset[int] = frozenset()) -> None:
        self.leaderless = leaderless
        self.listed_available = 0

    def topics(self) -> set[str]:
        return {"pension.account"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(12)) if topic == "pension.account" else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        self.listed_available += 1
        return set(range(12)) - self.leaderless


def test_a_keyed_record_goes_where_the_default_partitioner_sends_it_without_listing_leaders() -> None:
    rng = random.Random(7)
    keys = [f"P{rng.getrandbits(80):020X}".encode() for _ in range(2000)] + [b"", b"a", b"ab", b"abc", b"abcde"]
    cluster = Cluster(leaderless=frozenset({3, 8}))  # the key decides, whether or not a leader is known
    ours = [KeyedPartitioner().partition("pension.account", None, key, None, b"{}", cluster) for key in keys]
    listed = cluster.listed_available
    theirs = [DefaultPartitioner().partition("pension.account", None, key, None, b"{}", cluster) for key in keys]
    assert ours == theirs
    assert listed == 0
    assert set(ours) == set(range(12))  # and they spread over every partition


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    cluster = Cluster(leaderless=frozenset(range(1, 12)))
    assert {KeyedPartitioner().partition("pension.account", None, None, None, b"{}", cluster) for _ in range(50)} == {0}


def test_murmur2_equals_kafka_pythons_for_every_length() -> None:
    from kafka.partitioner.default import murmur2 as kafka_murmur2

    from pension_shared.messaging.kafka import murmur2

    rng = random.Random(11)
    for length in range(0, 130):
        for _ in range(40):
            data = bytes(rng.getrandbits(8) for _ in range(length))
            assert murmur2(data) == kafka_murmur2(data), data
    # The Java client's partitions of these keys over 1,000 partitions (kafka-python's own test).
    java = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}
    assert {key: (murmur2(key) & 0x7FFFFFFF) % 1000 for key in java} == java


class SmallerTopic(Cluster):
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(5)) if topic == "pension.account" else None


def test_a_remembered_key_is_partitioned_as_a_new_one_whatever_the_topic_has() -> None:
    keys = [f"P{n:020X}".encode() for n in range(300)]
    for cluster in (Cluster(), SmallerTopic(), Cluster()):  # the second and third pass meet the keys again
        ours = [KeyedPartitioner().partition("pension.account", None, key, None, b"{}", cluster) for key in keys * 2]
        theirs = [DefaultPartitioner().partition("pension.account", None, key, None, b"{}", cluster) for key in keys * 2]
        assert ours == theirs
