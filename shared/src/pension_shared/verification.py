"""Audit of a ledger: every stream's sequence and hash chain, checked from zero.

A break is reported exactly (stream, sequence, position, event id, what is wrong); editing a
stored attribute, removing an event anywhere in a stream (the last one included, through the
stream head) or re-linking events all show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import chain_hash, chain_hash_of_stored
from pension_shared.reading import batches_of_rows
from pension_shared.schema import events, stream_heads


@dataclass(frozen=True)
class ChainBreak:
    stream_id: str
    sequence: int | None
    position: int | None
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"stream {self.stream_id}"
        if self.sequence is not None:
            where += f" sequence {self.sequence} (position {self.position}, event {self.event_id})"
        return f"{where}: {self.reason}"


@dataclass
class VerificationReport:
    streams: int = 0
    events: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None


def verify_ledger(conn: Connection, *, batch_size: int = 5000) -> VerificationReport:
    report = VerificationReport()
    heads = {stream_id: (version, head_hash) for stream_id, version, head_hash in conn.execute(
        sa.select(stream_heads.c.stream_id, stream_heads.c.version, stream_heads.c.head_hash))}
    current: str | None = None
    expected_sequence, prevhash, broken = 0, None, False

    def close_stream() -> None:
        if current is None:
            return
        report.streams += 1
        head = heads.pop(current, None)
        if broken:
            return
        if head is None:
            report.breaks.append(ChainBreak(current, None, None, None, "stream has events but no head"))
        elif head != (expected_sequence, prevhash):
            report.breaks.append(ChainBreak(
                current, None, None, None,
                f"stream head says version {head[0]}, but the chain ends at {expected_sequence}"
                if head[0] != expected_sequence else "stream head hash differs from the last event's hash",
            ))

    events_checked = 0
    for row in _rows_in_stream_order(conn, batch_size):
        stream_id, sequence = row[2], row[3]
        if stream_id != current:
            close_stream()
            current, expected_sequence, prevhash, broken = stream_id, 0, None, False
        events_checked += 1
        if broken:
            continue
        problem = _check(row, expected_sequence + 1, prevhash)
        if problem:
            report.breaks.append(ChainBreak(stream_id, sequence, row[0], row[1], problem))
            broken = True
            continue
        expected_sequence, prevhash = sequence, row[12]
    report.events = events_checked
    close_stream()
    for stream_id, (version, _) in sorted(heads.items()):
        report.breaks.append(ChainBreak(stream_id, None, None, None, f"stream head at version {version} but no events"))
    return report


_COLUMNS = (
    events.c.position, events.c.event_id, events.c.stream_id, events.c.sequence, events.c.type, events.c.source,
    events.c.subject, events.c.time, events.c.data, events.c.correlation_id, events.c.causation_id,
    events.c.prevhash, events.c.hash,
)


def _rows_in_stream_order(conn: Connection, batch_size: int) -> Iterator[tuple]:
    """Every event as a plain tuple (the columns of ``_COLUMNS``), by stream and sequence, read in
    one snapshot through a server-side cursor ``batch_size`` rows at a time."""
    for rows in batches_of_rows(conn, sa.select(*_COLUMNS).order_by(events.c.stream_id, events.c.sequence), batch_size):
        yield from rows


def _check(row: tuple, expected_sequence: int, prevhash: str | None) -> str | None:
    position, event_id, stream_id, sequence, type_, source, subject, time, data, correlation_id, causation_id, \
        stored_prevhash, stored_hash = row
    if sequence != expected_sequence:
        return f"sequence {sequence} where {expected_sequence} was expected (an event is missing)"
    if stored_prevhash != prevhash:
        return "prevhash does not match the previous event's hash"
    attributes = dict(
        id=event_id, source=source, type=type_, time=time, subject=subject, streamid=stream_id, sequence=sequence,
        prevhash=stored_prevhash, correlationid=correlation_id, causationid=causation_id,
    )
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if chain_hash_of_stored(data_json=raw, **attributes) == stored_hash:
        return None
    # The stored text is not the canonical JSON the store writes (or the event was edited):
    # decide as the definition says, on the parsed content.
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "stored data is not JSON"
    if chain_hash(data=parsed, **attributes) != stored_hash:
        return "content does not match its hash (the event was edited)"
    return None
