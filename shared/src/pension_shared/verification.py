"""Audit of a ledger: every stream's sequence and hash chain, checked from zero.

A break is reported exactly (stream, sequence, position, event id, what is wrong); editing a
stored attribute, removing an event anywhere in a stream (the last one included, through the
stream head) or re-linking events all show.

On PostgreSQL the database screens the whole ledger first, in parallel over a shared snapshot:
it recomputes every event's SHA-256 from its stored attributes and checks every link with window
functions, and names the streams that do not pass. Only those streams are then checked event by
event here, which also words the break exactly. The screen can only send streams to that exact
check, never excuse one: it builds the hashed document byte for byte as ``chain_hash_of_stored``
does for attributes without quotes, backslashes or control characters (the only characters whose
JSON differs between the two), treats any other stream as suspect, and compares against the
stored hash, so an event passes the screen only when its content hashes to what was stored."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Collection, Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import DATACONTENTTYPE, SPECVERSION, chain_hash, chain_hash_of_stored
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


def verify_ledger(conn: Connection, *, batch_size: int = 5000, workers: int | None = None) -> VerificationReport:
    """Every stream's sequence and chain, and every stream head, in one snapshot of the ledger."""
    if conn.dialect.name == "postgresql":
        return _screened(conn, batch_size, workers or min(4, max(2, os.cpu_count() or 1)))
    return _checked(conn, batch_size)


def _checked(conn: Connection, batch_size: int, streams: Collection[str] | None = None) -> VerificationReport:
    """The exact check, event by event: of every stream, or of ``streams`` only."""
    report = VerificationReport()
    heads_query = sa.select(stream_heads.c.stream_id, stream_heads.c.version, stream_heads.c.head_hash)
    if streams is not None:
        heads_query = heads_query.where(stream_heads.c.stream_id.in_(sorted(streams)))
    heads = {stream_id: (version, head_hash) for stream_id, version, head_hash in conn.execute(heads_query)}
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
    for row in _rows_in_stream_order(conn, batch_size, streams):
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


def _rows_in_stream_order(conn: Connection, batch_size: int, streams: Collection[str] | None = None) -> Iterator[tuple]:
    """Every event (of ``streams``, when given) as a plain tuple (the columns of ``_COLUMNS``), by
    stream and sequence, read in one snapshot through a server-side cursor ``batch_size`` rows at a time."""
    query = sa.select(*_COLUMNS).order_by(events.c.stream_id, events.c.sequence)
    if streams is not None:
        query = query.where(events.c.stream_id.in_(sorted(streams)))
    for rows in batches_of_rows(conn, query, batch_size):
        yield from rows


# -- the database's screen (PostgreSQL) ------------------------------------------------------------

def _plain(*attributes: str) -> str:
    """True when no character of the texts ``attributes`` is one JSON escapes (a quote, a backslash
    or a control character; PostgreSQL text has no NUL): their JSON string is then just them
    quoted. Their lengths are added up rather than taken of their concatenation again: each is
    read from its header, where a second concatenation would copy them all."""
    lengths = " + ".join(f"octet_length({attribute})" for attribute in attributes)
    return f"octet_length(to_json({' || '.join(attributes)})::text) = {lengths} + 2"


_PLAIN = _plain("coalesce(causation_id, '')", "coalesce(correlation_id, '')", "event_id", "source", "subject", "time", "type")
"""An event's own string attributes are plain. Two are left to cheaper checks that already
hold when its stream passes: the stream id, checked once per stream (every event of the window's
partition has the same), and the previous hash, which the link makes equal to the previous
event's hash (NULL for the first), whose stored text the hash check makes lowercase hex."""

_DOCUMENT = f"""(('{{' || CASE WHEN causation_id IS NULL THEN '' ELSE '"causationid":"' || causation_id || '",' END)
        || (CASE WHEN correlation_id IS NULL THEN '' ELSE '"correlationid":"' || correlation_id || '",' END || '"data":'))
    || data
    || (((',"datacontenttype":"{DATACONTENTTYPE}","id":"' || event_id)
         || ('","prevhash":' || CASE WHEN prevhash IS NULL THEN 'null' ELSE '"' || prevhash || '"' END))
        || ((',"sequence":' || sequence || ',"source":"') || (source || '","specversion":"{SPECVERSION}","streamid":"'))
        || (((stream_id || '","subject":"') || (subject || '","time":"')) || ((time || '","type":"') || (type || '"}}'))))"""
"""The canonical JSON ``chain_hash_of_stored`` hashes (sorted keys, no whitespace, absent
correlation and causation left out), for events whose attributes are ``_PLAIN``. Each ``||`` copies
both its sides, so the pieces are joined as a balanced tree: the event's data, the longest piece,
is copied at two joins, where a chain joined left to right copied it, and all before it, at
eighteen."""

_SCREEN = f"""
WITH linked AS (
    SELECT stream_id, sequence, hash,
           hash_ok AND sequence = coalesce(lag(sequence) OVER w, 0) + 1
                   AND prevhash IS NOT DISTINCT FROM lag(hash) OVER w AS ok,
           lead(sequence) OVER w IS NULL AS last
    FROM (
        SELECT hashtext(stream_id) AS bucket, stream_id COLLATE "C" AS stream_id, sequence, prevhash, hash,
               {_PLAIN} AND encode(sha256(convert_to({_DOCUMENT}, 'UTF8')), 'hex') = hash AS hash_ok
        FROM events
        WHERE abs(hashtext(stream_id)) %% %(parts)s = %(part)s
        OFFSET 0
    ) hashed
    WINDOW w AS (PARTITION BY bucket, stream_id ORDER BY sequence)
)
SELECT count(l.stream_id), count(*) FILTER (WHERE l.last),
       coalesce(array_agg(DISTINCT coalesce(l.stream_id, h.stream_id)) FILTER (
           WHERE l.stream_id IS NULL OR NOT l.ok
              OR (l.last AND (NOT {_plain("l.stream_id")} OR h.stream_id IS NULL
                              OR h.version <> l.sequence OR h.head_hash <> l.hash))
       ), '{{}}')
FROM linked l FULL JOIN (
    SELECT stream_id, version, head_hash FROM stream_heads WHERE abs(hashtext(stream_id)) %% %(parts)s = %(part)s
) h ON h.stream_id = CASE WHEN l.last THEN l.stream_id END
"""
"""One part of the ledger (its streams by hash): events and streams counted, and the streams
where an event's hash, sequence or link, or the stream head, does not check, or whose head has
no events (the full join matches each head with its stream's last event only). Each event's
hash is computed below the window (``OFFSET 0`` keeps it there), so only the few columns the
window needs are sorted, in memory; the sort key leads with the stream's hash (an integer
compared at once, where stream ids share long prefixes) and compares stream ids bytewise. No
stored value can make it fail: a hash that is not hex just differs."""


def _screened(conn: Connection, batch_size: int, parts: int) -> VerificationReport:
    if not conn.in_transaction():
        conn.execution_options(isolation_level="REPEATABLE READ")
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()

    def screen(part: int) -> tuple[int, int, list[str]]:
        with conn.engine.connect().execution_options(isolation_level="REPEATABLE READ") as worker:
            worker.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            worker.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
            worker.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            worker.exec_driver_sql("SET LOCAL jit = off")
            counted = worker.exec_driver_sql(_SCREEN, {"parts": parts, "part": part}).one()
            worker.rollback()
            return counted[0], counted[1], counted[2]

    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="verify") as pool:
        screened = list(pool.map(screen, range(parts)))
    suspects = {stream for _, _, streams in screened for stream in streams}
    report = _checked(conn, batch_size, suspects) if suspects else VerificationReport()
    report.events = sum(events_ for events_, _, _ in screened)
    report.streams = sum(streams for _, streams, _ in screened)
    return report


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
