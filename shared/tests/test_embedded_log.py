"""The embedded log keeps the Kafka guarantees the mechanics rely on."""

from collections import defaultdict
from pathlib import Path

import pytest

from pension_shared.messaging import IncomingRecord, OutgoingRecord, dlq_topic
from pension_shared.messaging.embedded import EmbeddedLog, partition_for


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log" / "embedded.db"


def open_log(path: Path, partitions: int = 3) -> EmbeddedLog:
    log = EmbeddedLog(path, partitions=partitions)
    log.migrate()
    return log


def drain(subscription, *, expected: int, timeout_s: float = 0.2) -> list[IncomingRecord]:  # noqa: ANN001
    records: list[IncomingRecord] = []
    while True:
        batch = subscription.poll(timeout_s, 7)  # small batches: exercise paging
        if not batch:
            break
        records.extend(batch)
    assert len(records) == expected
    return records


def test_published_records_are_polled_and_a_committed_group_sees_nothing_more(log_path: Path) -> None:
    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord("t", "k1", b"one"), OutgoingRecord("t", None, b"two")])
    sub = log.subscribe(group_id="g", topics=["t"])
    records = drain(sub, expected=2)
    assert sorted(r.value for r in records) == [b"one", b"two"]
    assert {r.topic for r in records} == {"t"}
    sub.commit(records)
    assert log.subscribe(group_id="g", topics=["t"]).poll(0.05, 100) == []
    assert sum(log.end_offsets("t").values()) == 2
    assert sum(log.committed("g", "t").values()) == 2


def test_records_of_one_key_keep_their_order_in_one_partition(log_path: Path) -> None:
    log = open_log(log_path)
    keys = [f"P-{n}" for n in range(7)]
    log.publisher().publish([OutgoingRecord("t", keys[i % 7], f"{keys[i % 7]}:{i}".encode()) for i in range(140)])
    records = drain(log.subscribe(group_id="g", topics=["t"]), expected=140)
    by_key: dict[str, list[int]] = defaultdict(list)
    for r in records:
        assert r.partition == partition_for(r.key, 3)
        by_key[r.key].append(int(r.value.decode().split(":")[1]))  # type: ignore[index]
    assert set(by_key) == set(keys)
    for values in by_key.values():
        assert values == sorted(values) and len(values) == 20
    assert len({r.partition for r in records}) > 1  # several keys actually spread over partitions


def test_partition_for_is_stable_and_in_range() -> None:
    assert partition_for(None, 5) == 0
    assert all(0 <= partition_for(f"k{n}", 5) < 5 for n in range(100))
    assert partition_for("P-1", 12) == partition_for("P-1", 12)


def test_offsets_grow_per_partition_across_publishes(log_path: Path) -> None:
    log = open_log(log_path, partitions=1)
    for n in range(3):
        log.publisher().publish([OutgoingRecord("t", "k", b"a"), OutgoingRecord("t", "k", b"b")])
    records = drain(log.subscribe(group_id="g", topics=["t"]), expected=6)
    assert [r.offset for r in records] == list(range(6))


def test_a_group_resumes_after_its_committed_offset_when_the_log_is_reopened(log_path: Path) -> None:
    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord("t", f"k{i % 4}", str(i).encode()) for i in range(40)])
    sub = log.subscribe(group_id="g", topics=["t"])
    first = sub.poll(0.1, 15)
    assert len(first) == 15
    sub.commit(first)
    log.close()  # the process dies here

    reopened = open_log(log_path)
    rest = drain(reopened.subscribe(group_id="g", topics=["t"]), expected=25)
    assert {r.value for r in first} | {r.value for r in rest} == {str(i).encode() for i in range(40)}
    assert not {(r.partition, r.offset) for r in first} & {(r.partition, r.offset) for r in rest}


def test_records_polled_but_not_committed_are_redelivered_after_a_restart(log_path: Path) -> None:
    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord("t", f"k{i}", str(i).encode()) for i in range(10)])
    sub = log.subscribe(group_id="g", topics=["t"])
    polled = drain(sub, expected=10)
    sub.commit(polled[:4])
    log.close()

    reopened = open_log(log_path)
    sub2 = reopened.subscribe(group_id="g", topics=["t"])
    redelivered = []
    while batch := sub2.poll(0.1, 100):
        redelivered.extend(batch)
    committed = {(r.partition, r.offset) for r in polled[:4]}
    expected = {(r.partition, r.offset) for r in polled} - committed
    assert sorted((r.partition, r.offset) for r in redelivered) == sorted(expected)


def test_consumer_groups_are_independent(log_path: Path) -> None:
    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord("t", "k", b"x")])
    a = log.subscribe(group_id="a", topics=["t"])
    a.commit(drain(a, expected=1))
    drain(log.subscribe(group_id="b", topics=["t"]), expected=1)


def test_topics_are_independent(log_path: Path) -> None:
    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord("t", "k", b"x"), OutgoingRecord(dlq_topic("t"), "k", b"dead")])
    assert [r.value for r in drain(log.subscribe(group_id="g", topics=["t"]), expected=1)] == [b"x"]
    dead = drain(log.subscribe(group_id="g", topics=["t.dlq"]), expected=1)
    assert dead[0].value == b"dead" and dead[0].topic == "t.dlq"


def test_seek_back_redelivers_from_the_given_records(log_path: Path) -> None:
    log = open_log(log_path, partitions=1)
    log.publisher().publish([OutgoingRecord("t", "k", str(i).encode()) for i in range(5)])
    sub = log.subscribe(group_id="g", topics=["t"])
    records = drain(sub, expected=5)
    sub.seek_back(records[2:])
    assert [r.value for r in sub.poll(0.1, 100)] == [b"2", b"3", b"4"]


def test_poll_waits_for_a_record_published_meanwhile(log_path: Path) -> None:
    import threading

    log = open_log(log_path)
    sub = log.subscribe(group_id="g", topics=["t"])
    timer = threading.Timer(0.1, lambda: log.publisher().publish([OutgoingRecord("t", "k", b"late")]))
    timer.start()
    try:
        records = sub.poll(5.0, 10)
    finally:
        timer.join()
    assert [r.value for r in records] == [b"late"]


def test_the_lag_of_groups_on_the_embedded_log_is_what_they_have_not_committed(log_path: Path) -> None:
    from pension_shared.observability import consumer_lag

    log = open_log(log_path)
    log.publisher().publish([OutgoingRecord(t, f"P-{n}", b"x") for t in ("a", "b") for n in range(12)])
    sub = log.subscribe(group_id="g", topics=["a"])
    sub.commit(drain(sub, expected=12))

    assert log.ends(["a", "b", "c"]) == {"a": log.end_offsets("a"), "b": log.end_offsets("b"), "c": {}}
    assert log.group_committed("g") == {"a": log.end_offsets("a")}
    lag = consumer_lag(log, {"g": ["a", "b"], "h": ["a"]})
    assert lag["g"] == {"a": {p: 0 for p in log.end_offsets("a")}, "b": log.end_offsets("b")}
    assert lag["h"] == {"a": log.end_offsets("a")}
