"""The ports between the mechanics and a message log, with two adapters: Apache Kafka
(production, through kafka-python) and the embedded log (SQLite, for the embedded default).
The relay, the consumer and the inbox use only these ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class IncomingRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher(Protocol):
    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Return only when every record is durably acknowledged by the log, in order per key;
        raise otherwise (nothing is then known to be published)."""

    def close(self) -> None: ...


class Subscription(Protocol):
    def poll(self, timeout_s: float, max_records: int) -> list[IncomingRecord]: ...

    def commit(self, records: Sequence[IncomingRecord]) -> None:
        """Commit the offsets just past these records (their partitions only)."""

    def close(self) -> None: ...


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class PublishFailed(RuntimeError):
    """The log did not acknowledge a record."""
