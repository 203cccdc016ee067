"""The log's positions as operators and the bench read them on the real Kafka broker
(``pension_shared.observability``): end offsets, a group's committed offsets, and the lag of
several groups asked in one request for every topic and one per group."""

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from pension_shared.messaging import OutgoingRecord
from pension_shared.messaging.kafka import KafkaPublisher, ensure_topics
from pension_shared.observability import KafkaOffsets, consumer_lag
from pension_shared.testing import random_id

pytestmark = pytest.mark.kafka


def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    committer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})
    finally:
        committer.close()


class _Counting:
    """Counts the calls made to one method of an object, passing them on."""

    def __init__(self, target: object, method: str) -> None:
        self.calls, self._method = 0, getattr(target, method)
        setattr(target, method, self)

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        self.calls += 1
        return self._method(*args, **kwargs)


def test_the_lag_of_several_groups_is_read_with_one_request_for_the_ends_and_one_per_group(kafka_bootstrap: str) -> None:
    first, second, empty = (random_id(f"test.lag{n}.") for n in range(3))
    ensure_topics(kafka_bootstrap, [first, second, empty], partitions=3)
    publisher = KafkaPublisher(kafka_bootstrap, client_id=random_id("test-pub-"))
    try:
        publisher.publish([OutgoingRecord(topic, f"P-{n}", b"x") for topic in (first, second) for n in range(30)])
    finally:
        publisher.close()
    offsets = KafkaOffsets(kafka_bootstrap)
    try:
        ends = offsets.ends([first, second, empty])
        assert sum(ends[first].values()) == sum(ends[second].values()) == 30
        assert set(ends[first]) == set(ends[second]) == {0, 1, 2}
        assert ends[empty] == {0: 0, 1: 0, 2: 0}
        behind, ahead = random_id("lagging-"), random_id("caught-up-")
        # One group has consumed the first topic up to one record short of each partition's end;
        # the other has consumed every record of both.
        _commit(kafka_bootstrap, behind, {(first, p): end - 1 for p, end in ends[first].items() if end})
        _commit(kafka_bootstrap, ahead, {(t, p): end for t in (first, second) for p, end in ends[t].items()})
        assert offsets.group_committed(ahead) == {t: ends[t] for t in (first, second)}
        assert offsets.committed(behind, second) == {}
        listed = _Counting(offsets.consumer(), "end_offsets")
        asked = _Counting(offsets, "group_committed")

        lag = consumer_lag(offsets, {behind: [first, second, empty], ahead: [first, second]})

        assert listed.calls == 1 and asked.calls == 2
        assert lag[behind][first] == {p: 1 if end else 0 for p, end in ends[first].items()}
        assert lag[behind][second] == ends[second]  # nothing committed: every record is behind
        assert lag[behind][empty] == {0: 0, 1: 0, 2: 0}
        assert lag[ahead] == {first: {0: 0, 1: 0, 2: 0}, second: {0: 0, 1: 0, 2: 0}}
    finally:
        offsets.close()
