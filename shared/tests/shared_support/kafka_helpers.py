"""Helpers for tests against the real Kafka broker."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from kafka import KafkaConsumer

from pension_shared.consumer import InboxConsumer, Outcome


@dataclass
class Totals:
    processed: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0

    def add(self, outcome: Outcome) -> None:
        for name in ("processed", "duplicates", "ignored", "dead_lettered"):
            setattr(self, name, getattr(self, name) + getattr(outcome, name))

    @property
    def records(self) -> int:
        return self.processed + self.duplicates + self.ignored + self.dead_lettered


def consume_until(consumer: InboxConsumer, done: Callable[[Totals], bool], *, timeout_s: float = 60) -> Totals:
    totals = Totals()
    deadline = time.monotonic() + timeout_s
    while not done(totals):
        if time.monotonic() > deadline:
            raise AssertionError(f"the consumer did not get there in {timeout_s}s: {totals}")
        totals.add(consumer.consume_once(timeout_s=0.5))
    return totals


def read_topic(bootstrap: str, topic: str, *, expected: int, timeout_s: float = 30) -> list:
    """Every record of a topic, from the beginning, with a throw-away consumer (no group)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
    )
    records: list = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # and nothing more than expected arrives shortly after
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records
