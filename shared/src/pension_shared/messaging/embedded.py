"""The embedded log: a durable, partitioned, append-only message log in one SQLite file, with
consumer-group offsets, standing in for Kafka in the embedded default.

It keeps Kafka's guarantees that the mechanics rely on: records are ordered per partition and
the key picks the partition; a publish returns only once committed to disk; a consumer group
resumes after its last committed offset, so a killed process loses nothing and redelivers at
most what it had not committed."""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path
from typing import Sequence

import orjson
import sqlalchemy as sa
from pension_shared.db import create_engine
from pension_shared.messaging import IncomingRecord, OutgoingRecord
from pension_shared.migrations import upgrade

_metadata = sa.MetaData()

log_records = sa.Table(
    "log_records",
    _metadata,
    sa.Column("topic", sa.String(128), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("offset", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(64)),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("appended_at", sa.Float, nullable=False),
    sa.Column("headers", sa.LargeBinary),
)

log_offsets = sa.Table(
    "log_offsets",
    _metadata,
    sa.Column("group_id", sa.String(128), primary_key=True),
    sa.Column("topic", sa.String(128), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.Integer, nullable=False),
)


def _headers_stored(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    """A record's headers as stored: a JSON list of [name, value], each value's bytes as Latin-1."""
    return orjson.dumps([[name, value.decode("latin-1")] for name, value in headers]) if headers else None


def _headers_read(stored: bytes | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, value.encode("latin-1")) for name, value in orjson.loads(stored)) if stored else ()


def partition_for(key: str | None, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions if key is not None else 0


class EmbeddedLog:
    def __init__(self, path: Path, *, partitions: int = 3) -> None:
        self.path = path
        self.partitions = partitions
        self.engine = create_engine(f"sqlite:///{path}")
        self._appended = threading.Condition()

    def migrate(self) -> None:
        upgrade(Path(__file__).parent / "embedded_migrations", str(self.engine.url))

    def publisher(self) -> "EmbeddedPublisher":
        return EmbeddedPublisher(self)

    def subscribe(self, *, group_id: str, topics: Sequence[str]) -> "EmbeddedSubscription":
        return EmbeddedSubscription(self, group_id=group_id, topics=topics)

    def append(self, records: Sequence[OutgoingRecord]) -> None:
        with self.engine.begin() as conn:
            next_offsets: dict[tuple[str, int], int] = {}
            rows = []
            for record in records:
                where = (record.topic, partition_for(record.key, self.partitions))
                if where not in next_offsets:
                    next_offsets[where] = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(log_records.c.offset) + 1, 0)).where(
                            log_records.c.topic == where[0], log_records.c.partition == where[1]
                        )
                    ).scalar_one()
                rows.append({
                    "topic": where[0], "partition": where[1], "offset": next_offsets[where],
                    "key": record.key, "value": record.value, "appended_at": time.time(),
                    "headers": _headers_stored(record.headers),
                })
                next_offsets[where] += 1
            if rows:
                conn.execute(log_records.insert(), rows)
        with self._appended:
            self._appended.notify_all()

    def wait_for_append(self, timeout_s: float) -> None:
        with self._appended:
            self._appended.wait(timeout_s)

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(log_records.c.partition, sa.func.max(log_records.c.offset) + 1)
                .where(log_records.c.topic == topic)
                .group_by(log_records.c.partition)
            ).all()
        return {partition: end for partition, end in rows}

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(log_offsets.c.partition, log_offsets.c.next_offset).where(
                    log_offsets.c.group_id == group_id, log_offsets.c.topic == topic
                )
            ).all()
        return dict(rows)

    def ends(self, topics: Sequence[str]) -> dict[str, dict[int, int]]:
        """Each topic's end offsets by partition (``KafkaOffsets.ends``)."""
        return {topic: self.end_offsets(topic) for topic in topics}

    def group_committed(self, group_id: str) -> dict[str, dict[int, int]]:
        """The group's committed offsets, by topic and partition (``KafkaOffsets.group_committed``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(log_offsets.c.topic, log_offsets.c.partition, log_offsets.c.next_offset)
                .where(log_offsets.c.group_id == group_id)
            ).all()
        found: dict[str, dict[int, int]] = {}
        for topic, partition, offset in rows:
            found.setdefault(topic, {})[partition] = offset
        return found

    def read(self, topic: str, partition: int, offset: int, limit: int) -> list[IncomingRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(log_records)
                .where(log_records.c.topic == topic, log_records.c.partition == partition, log_records.c.offset >= offset)
                .order_by(log_records.c.offset)
                .limit(limit)
            ).all()
        return [IncomingRecord(r.topic, r.partition, r.offset, r.key, r.value, _headers_read(r.headers)) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


class EmbeddedPublisher:
    def __init__(self, log: EmbeddedLog) -> None:
        self._log = log

    def publish(self, records: Sequence[OutgoingRecord]) -> None:
        self._log.append(records)

    def close(self) -> None:
        pass


class EmbeddedSubscription:
    """One member of a consumer group (the embedded log has no rebalancing: one member each)."""

    def __init__(self, log: EmbeddedLog, *, group_id: str, topics: Sequence[str]) -> None:
        self._log = log
        self._group_id = group_id
        self._positions: dict[tuple[str, int], int] = {}
        for topic in topics:
            committed = log.committed(group_id, topic)
            for partition in range(log.partitions):
                self._positions[(topic, partition)] = committed.get(partition, 0)

    def poll(self, timeout_s: float, max_records: int) -> list[IncomingRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            self._log.wait_for_append(min(remaining, 0.2))

    def _fetch(self, max_records: int) -> list[IncomingRecord]:
        records: list[IncomingRecord] = []
        for (topic, partition), offset in self._positions.items():
            if len(records) >= max_records:
                break
            batch = self._log.read(topic, partition, offset, max_records - len(records))
            if batch:
                self._positions[(topic, partition)] = batch[-1].offset + 1
                records.extend(batch)
        return records

    def commit(self, records: Sequence[IncomingRecord]) -> None:
        highest: dict[tuple[str, int], int] = {}
        for r in records:
            highest[(r.topic, r.partition)] = max(highest.get((r.topic, r.partition), -1), r.offset)
        if not highest:
            return
        with self._log.engine.begin() as conn:
            for (topic, partition), offset in highest.items():
                values = {"group_id": self._group_id, "topic": topic, "partition": partition, "next_offset": offset + 1}
                updated = conn.execute(
                    log_offsets.update()
                    .where(log_offsets.c.group_id == self._group_id, log_offsets.c.topic == topic, log_offsets.c.partition == partition)
                    .values(next_offset=offset + 1)
                )
                if updated.rowcount == 0:
                    conn.execute(log_offsets.insert().values(**values))

    def seek_back(self, records: Sequence[IncomingRecord]) -> None:
        for r in records:
            where = (r.topic, r.partition)
            self._positions[where] = min(self._positions.get(where, r.offset), r.offset)

    def close(self) -> None:
        pass
