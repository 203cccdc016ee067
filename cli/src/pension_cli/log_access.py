"""Reading and writing the event log as an operator: end offsets, consumer groups' committed
offsets, records from a position (following or not), and publishing, on the embedded log or on
Kafka. Operator reads never join a consumer group, so they never move anyone's offsets."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from pension_shared.messaging import IncomingRecord, OutgoingRecord


class LogAccess(Protocol):
    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def committed(self, group_id: str, topic: str) -> dict[int, int]: ...

    def records(
        self, topics: Sequence[str], *, from_beginning: bool, follow: bool, stop: threading.Event | None = None,
        back: int = 0,
    ) -> Iterator[IncomingRecord]:
        """Records of these topics; without ``follow``, those present when called, then stop.
        Not from the beginning, reading starts ``back`` records before the end of each partition."""

    def publish(self, records: Sequence[OutgoingRecord]) -> None: ...

    def close(self) -> None: ...


class EmbeddedLogAccess:
    def __init__(self, path: Path, *, partitions: int, poll_interval_s: float = 0.2, shared: Any = None) -> None:
        """``shared``: the EmbeddedLog of the platform in this process, if any; following it, a
        reader wakes as soon as something is appended instead of at the next poll."""
        from pension_shared.messaging.embedded import EmbeddedLog

        self._log = shared or EmbeddedLog(path, partitions=partitions)
        self._owned = shared is None
        self._poll_interval_s = poll_interval_s

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._log.end_offsets(topic)

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        return self._log.committed(group_id, topic)

    def records(
        self, topics: Sequence[str], *, from_beginning: bool, follow: bool, stop: threading.Event | None = None,
        back: int = 0,
    ) -> Iterator[IncomingRecord]:
        ends = {t: self.end_offsets(t) for t in topics}
        positions = {
            (t, p): (0 if from_beginning else max(ends[t].get(p, 0) - back, 0))
            for t in topics for p in range(max([self._log.partitions, *[q + 1 for q in ends[t]]]))
        }
        while stop is None or not stop.is_set():
            fetched = False
            for (topic, partition), offset in positions.items():
                limit = 500 if follow else ends[topic].get(partition, 0) - offset
                if limit <= 0:
                    continue
                batch = self._log.read(topic, partition, offset, limit)
                if batch:
                    fetched = True
                    positions[(topic, partition)] = batch[-1].offset + 1
                    yield from batch
            if not fetched:
                if not follow:
                    return
                self._log.wait_for_append(self._poll_interval_s)

    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        self._log.append(records)

    def close(self) -> None:
        if self._owned:
            self._log.close()


class KafkaLogAccess:
    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        if not bootstrap:
            raise ValueError("PENSION_KAFKA_BOOTSTRAP is not set")
        from pension_shared.observability import KafkaOffsets

        self.bootstrap = bootstrap
        self._offsets = KafkaOffsets(bootstrap, timeout_s=timeout_s)
        self._publisher = None

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets.end_offsets(topic)

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        return self._offsets.committed(group_id, topic)

    def records(
        self, topics: Sequence[str], *, from_beginning: bool, follow: bool, stop: threading.Event | None = None,
        back: int = 0,
    ) -> Iterator[IncomingRecord]:
        from kafka import TopicPartition

        reader = self._offsets.consumer()
        partitions = [tp for t in topics for tp in self._offsets.partitions(t)]
        if not partitions:
            return
        reader.assign(partitions)
        ends = reader.end_offsets(partitions)
        if from_beginning:
            reader.seek_to_beginning(*partitions)
        elif back:
            starts = reader.beginning_offsets(partitions)
            for tp in partitions:
                reader.seek(tp, max(ends[tp] - back, starts[tp]))
        else:
            reader.seek_to_end(*partitions)
        while stop is None or not stop.is_set():
            if not follow and all(reader.position(tp) >= ends[tp] for tp in partitions):
                return
            for batch in reader.poll(timeout_ms=500, max_records=500).values():
                for m in batch:
                    if not follow and m.offset >= ends[TopicPartition(m.topic, m.partition)]:
                        continue
                    yield IncomingRecord(
                        m.topic, m.partition, m.offset, m.key.decode() if m.key is not None else None, m.value,
                        tuple((k, v) for k, v in (m.headers or [])),
                    )

    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        from pension_shared.messaging.kafka import KafkaPublisher

        if self._publisher is None:
            self._publisher = KafkaPublisher(self.bootstrap, client_id="pension-operator")
        self._publisher.publish(records)

    def close(self) -> None:
        self._offsets.close()
        if self._publisher is not None:
            self._publisher.close()
