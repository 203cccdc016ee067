"""A publish that failed replaces the producer: kafka-python's idempotent producer can stay
wedged after its batches expired (every later flush timing out), found by ``make chaos``."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from pension_shared.messaging import OutgoingRecord, PublishFailed
from pension_shared.messaging import kafka as adapter


class _Future:
    def get(self, timeout: float) -> None:
        return None


class _Producer:
    made: list["_Producer"] = []

    def __init__(self, **settings: object) -> None:
        self.settings = settings
        self.sent: list[bytes] = []
        self.closed = False
        self.wedged = len(_Producer.made) == 0  # the first one never gets its batches out
        _Producer.made.append(self)

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: list) -> _Future:
        self.sent.append(value)
        return _Future()

    def flush(self, timeout: float) -> None:
        if self.wedged:
            raise KafkaTimeoutError("Timeout waiting for future")

    def close(self, timeout: float) -> None:
        self.closed = True


def test_a_failed_publish_replaces_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    _Producer.made = []
    monkeypatch.setattr(adapter, "KafkaProducer", _Producer)
    publisher = adapter.KafkaPublisher("127.0.0.1:9", client_id="relay")
    records = [OutgoingRecord("pension.tax", "P1", b"one"), OutgoingRecord("pension.tax", "P1", b"two")]

    with pytest.raises(PublishFailed):
        publisher.publish(records)
    assert _Producer.made[0].closed

    publisher.publish(records)  # the same records again, through a new producer
    assert len(_Producer.made) == 2
    assert _Producer.made[1].sent == [b"one", b"two"]
    assert _Producer.made[1].settings == _Producer.made[0].settings
    assert _Producer.made[1].settings["enable_idempotence"] is True
    publisher.publish(records[:1])
    assert len(_Producer.made) == 2  # a working producer is kept
