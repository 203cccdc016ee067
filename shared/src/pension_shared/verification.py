"""Audit of a ledger: every stream's sequence and hash chain, checked from zero.

A break is reported exactly (stream, sequence, position, event id, what is wrong); editing a
stored attribute, removing an event anywhere in a stream (the last one included, through the
stream head) or re-linking events all show."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import chain_hash
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
    heads = {row.stream_id: (row.version, row.head_hash) for row in conn.execute(sa.select(stream_heads))}
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

    last_key: tuple[str, int] | None = None
    while True:
        query = sa.select(events).order_by(events.c.stream_id, events.c.sequence).limit(batch_size)
        if last_key is not None:
            query = query.where(sa.tuple_(events.c.stream_id, events.c.sequence) > sa.tuple_(*last_key))
        rows = conn.execute(query).all()
        for row in rows:
            if row.stream_id != current:
                close_stream()
                current, expected_sequence, prevhash, broken = row.stream_id, 0, None, False
            report.events += 1
            if broken:
                continue
            problem = _check(row, expected_sequence + 1, prevhash)
            if problem:
                report.breaks.append(ChainBreak(row.stream_id, row.sequence, row.position, row.event_id, problem))
                broken = True
                continue
            expected_sequence, prevhash = row.sequence, row.hash
        if len(rows) < batch_size:
            break
        last_key = (rows[-1].stream_id, rows[-1].sequence)
    close_stream()
    for stream_id, (version, _) in sorted(heads.items()):
        report.breaks.append(ChainBreak(stream_id, None, None, None, f"stream head at version {version} but no events"))
    return report


def _check(row, expected_sequence: int, prevhash: str | None) -> str | None:  # noqa: ANN001
    if row.sequence != expected_sequence:
        return f"sequence {row.sequence} where {expected_sequence} was expected (an event is missing)"
    if row.prevhash != prevhash:
        return "prevhash does not match the previous event's hash"
    try:
        data = orjson.loads(row.data)
    except orjson.JSONDecodeError:
        return "stored data is not JSON"
    recomputed = chain_hash(
        id=row.event_id, source=row.source, type=row.type, time=row.time, subject=row.subject,
        streamid=row.stream_id, sequence=row.sequence, data=data, prevhash=row.prevhash,
        correlationid=row.correlation_id, causationid=row.causation_id,
    )
    if recomputed != row.hash:
        return "content does not match its hash (the event was edited)"
    return None
