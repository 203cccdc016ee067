"""The event store: the service's ledger.

Append-only streams with optimistic concurrency (a unique ``(stream_id, sequence)`` and a
versioned stream head), a per-stream hash chain, the transactional outbox (written in the same
transaction as the events) and inline projections (read models updated in that transaction,
rebuildable from zero)."""

from __future__ import annotations

import functools
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from pension_shared.db import bound_list, dialect_insert, in_list, power_of_two_at_least
from pension_shared.envelope import Envelope, EventType, Upcasters, canonical_json, chain_hash, event_type
from pension_shared.errors import ConcurrencyConflict
from pension_shared.reading import batches_of_rows
from pension_shared.schema import events, outbox, snapshots, stream_heads


@dataclass(frozen=True)
class NewEvent:
    """An event a command decided on, before it is recorded."""

    name: str
    data: Mapping[str, Any]
    subject: str
    version: int = 1


@dataclass(frozen=True)
class Metadata:
    """Who and what caused the events appended in one transaction."""

    time: str
    correlation_id: str | None = None
    causation_id: str | None = None


class Projection(Protocol):
    """A read model maintained from this service's own events."""

    name: str
    tables: Sequence[sa.Table]

    def apply(self, conn: Connection, event: Envelope) -> None: ...

    # Optional: ``apply_batch(conn, events)`` applies events in order, as ``apply`` one by one
    # would, writing each touched row once (used when rebuilding from zero; see
    # ``pension_shared.projection_batch``).


@dataclass(frozen=True)
class Snapshot:
    """An aggregate's state folded from its stream's events up to ``version`` (``save_snapshot``)."""

    kind: str
    """What folded it, with the version of that fold (``FundAccount.v1``): a snapshot of another
    kind is never used, so a fold that changes takes a new kind."""
    version: int
    hash: str
    """The hash of the event at ``version``: the chain goes on from it."""
    state: Mapping[str, Any]


@dataclass
class Stream:
    stream_id: str
    version: int
    events: list[Envelope] = field(default_factory=list)
    snapshot: Snapshot | None = None
    """Set when loaded from a snapshot (``load_many`` with ``snapshots``): the state up to
    ``snapshot.version``, and then ``events`` holds only the events after it."""

    @property
    def snapshot_state(self) -> Mapping[str, Any] | None:
        """The state to fold ``events`` onto: the snapshot's, or None (from the start)."""
        return self.snapshot.state if self.snapshot is not None else None


SNAPSHOT_EVERY = 20
"""A stream gets a new snapshot once this many events were appended after its last one: loading
it then reads at most this many events (plus the snapshot), however long its history."""


class EventStore:
    def __init__(
        self,
        *,
        service: str,
        topic: str,
        projections: Sequence[Projection] = (),
        upcasters: Upcasters | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.source = f"/pension/{service}"
        self.projections = tuple(projections)
        self.upcasters = upcasters or Upcasters()
        self.observers: list[Callable[[Sequence[Envelope]], None]] = []
        """Told of every batch appended (metrics count them); they must not fail."""

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        conn: Connection,
        stream_id: str,
        expected_version: int,
        new_events: Sequence[NewEvent],
        meta: Metadata,
    ) -> list[Envelope]:
        """Append ``new_events`` after ``expected_version`` (0 for a new stream).

        Raises ``ConcurrencyConflict`` if another writer got there first; the caller's
        transaction must then be rolled back."""
        if not new_events:
            return []
        current_version, prevhash = self._head(conn, stream_id)
        if current_version != expected_version:
            raise ConcurrencyConflict(
                f"stream {stream_id} is at version {current_version}, not {expected_version}",
                stream_id=stream_id,
            )
        return self._record(conn, stream_id, expected_version, prevhash, new_events, meta)

    def append_to_existing(
        self, conn: Connection, stream_id: str, new_events: Sequence[NewEvent], meta: Metadata,
    ) -> list[Envelope]:
        """Append after whatever the stream holds, for a writer whose decision does not depend
        on the stream's content (recording what another service reported): the head is read
        instead of the whole stream. Raises ``LookupError`` if the stream has no events; the
        head's versioned write still refuses a concurrent writer (``ConcurrencyConflict``)."""
        version, head_hash = self._head(conn, stream_id)
        if not version:
            raise LookupError(f"stream {stream_id} has no events")
        return self._record(conn, stream_id, version, head_hash, new_events, meta)

    def append_to(self, conn: Connection, stream: Stream, new_events: Sequence[NewEvent], meta: Metadata) -> list[Envelope]:
        """``append`` after a stream loaded in this transaction, without reading its head again:
        the head's hash is the hash of the stream's last event (or its snapshot's, when loaded
        at the head from one). The head's versioned write still refuses a writer that got there
        first (``ConcurrencyConflict``)."""
        if not new_events:
            return []
        if stream.events and stream.events[-1].sequence == stream.version:
            return self._record(conn, stream.stream_id, stream.version, stream.events[-1].hash, new_events, meta)
        if not stream.events and stream.snapshot is not None and stream.snapshot.version == stream.version:
            return self._record(conn, stream.stream_id, stream.version, stream.snapshot.hash, new_events, meta)
        if stream.version == 0 and not stream.events:
            return self._record(conn, stream.stream_id, 0, None, new_events, meta)
        return self.append(conn, stream.stream_id, stream.version, new_events, meta)

    def _record(
        self, conn: Connection, stream_id: str, expected_version: int, prevhash: str | None,
        new_events: Sequence[NewEvent], meta: Metadata,
    ) -> list[Envelope]:
        recorded: list[Envelope] = []
        sequence = expected_version
        for new in new_events:
            sequence += 1
            attributes = dict(
                id=str(uuid.uuid4()), source=self.source, type=event_type(self.service, new.name, new.version),
                time=meta.time, subject=new.subject, streamid=stream_id, sequence=sequence, data=dict(new.data),
                prevhash=prevhash, correlationid=meta.correlation_id, causationid=meta.causation_id,
            )
            envelope = Envelope(**attributes, hash=chain_hash(**attributes))
            recorded.append(envelope)
            prevhash = envelope.hash
        kept = _kept(conn, self)
        if kept is not None:
            kept.add(stream_id, expected_version, recorded)
            return recorded
        return self._write(conn, [(stream_id, expected_version, recorded[-1].sequence, recorded[-1].hash)], recorded)

    def _head(self, conn: Connection, stream_id: str) -> tuple[int, str | None]:
        """The stream's version and head hash: as kept in this transaction, else as stored."""
        kept = _kept(conn, self)
        if kept is not None:
            if stream_id in kept.heads:
                _, version, head_hash = kept.heads[stream_id]
                return version, head_hash
            if stream_id in kept.stored_heads:
                return kept.stored_heads[stream_id]
        head = conn.execute(_SELECT_HEAD, {"stream_id": stream_id}).one_or_none()
        return (head.version, head.head_hash) if head else (0, None)

    @contextmanager
    def deferred(self, conn: Connection) -> Iterator[None]:
        """Within it, appends in ``conn``'s transaction are kept and written together when it
        ends: every stream head, event and outbox row in one statement, and the projections a
        batch at a time. ``load`` and appends see the kept events (``read_stream``, ``read_all``
        and ``head_position`` write them first); a read model read meanwhile does not have them
        yet (``flush`` first). A conflict shows when they are written (``ConcurrencyConflict``).
        Used by consumers for the policies that read only streams."""
        if _kept(conn, self) is not None:  # the outer one writes
            yield
            return
        # The dictionary itself is held: once the connection is lost (the database restarted),
        # asking it for ``info`` again raises PendingRollbackError, which would hide the
        # disconnect (a 503 to retry) behind an error of its own (a 500).
        info = conn.info
        info[_KEPT] = (self, _Kept())
        try:
            yield
            self.flush(conn)
        finally:
            info.pop(_KEPT, None)

    @contextmanager
    def immediately(self, conn: Connection) -> Iterator[None]:
        """Within ``deferred``, appends written as they are made again (after ``flush``)."""
        info = conn.info
        entry = info.pop(_KEPT, None)
        assert entry is None or not entry[1].events, "flush the kept appends first"
        if entry is not None:  # what the writes to come change is not known here
            entry[1].forget_read_ahead()
        try:
            yield
        finally:
            if entry is not None:
                info[_KEPT] = entry

    def flush(self, conn: Connection) -> None:
        """Write the appends kept by ``deferred`` so far (nothing outside it)."""
        kept = _kept(conn, self)
        if kept is None:
            return
        kept.forget_read_ahead()
        if not kept.events:
            return
        heads = [(stream_id, expected, version, head_hash) for stream_id, (expected, version, head_hash) in kept.heads.items()]
        recorded, snapshots_ = kept.events, kept.snapshots
        kept.heads, kept.events, kept.streams, kept.snapshots = {}, [], {}, {}
        self._write(conn, heads, recorded)
        for stream_id, snapshot in snapshots_.items():
            self.save_snapshot(conn, stream_id, snapshot)

    def _write(
        self, conn: Connection, heads: Sequence[tuple[str, int, int, str]], recorded: Sequence[Envelope],
    ) -> list[Envelope]:
        """Write the streams' heads (stream id, expected version, new version, new head hash),
        the events and their outbox rows; then project the events and tell the observers."""
        try:
            if conn.dialect.name == "postgresql":
                positions = self._write_in_one_statement(conn, heads, recorded)
            else:
                for stream_id, expected, version, head_hash in heads:
                    self._write_head(conn, stream_id, expected, version, head_hash)
                positions = self._insert_events(conn, recorded)
                conn.execute(
                    outbox.insert(),
                    [{"event_id": e.id, "topic": self.topic, "key": e.subject, "payload": e.to_json()} for e in recorded],
                )
        except IntegrityError as exc:
            streams = ", ".join(stream_id for stream_id, *_ in heads)
            raise ConcurrencyConflict(f"stream {streams} was appended to concurrently", stream_id=heads[0][0]) from exc
        recorded = [_with_position(e, p) for e, p in zip(recorded, positions)]
        conn.info[_LAST_APPENDED] = (conn.get_transaction(), positions[-1])
        if len(recorded) == 1:
            self._project(conn, recorded[0])
        else:
            self.replay(conn, [self.upcasters.upcast(e) for e in recorded])
        for observe in self.observers:
            observe(recorded)
        return recorded

    def _write_head(self, conn: Connection, stream_id: str, expected: int, version: int, head_hash: str) -> None:
        if expected == 0:
            conn.execute(stream_heads.insert().values(stream_id=stream_id, version=version, head_hash=head_hash))
            return
        updated = conn.execute(
            stream_heads.update()
            .where(stream_heads.c.stream_id == stream_id, stream_heads.c.version == expected)
            .values(version=version, head_hash=head_hash)
        )
        if updated.rowcount != 1:
            raise ConcurrencyConflict(f"stream {stream_id} moved past version {expected}", stream_id=stream_id)

    def _write_in_one_statement(
        self, conn: Connection, heads: Sequence[tuple[str, int, int, str]], recorded: Sequence[Envelope],
    ) -> list[int]:
        """The heads, the events and their outbox rows in one round trip (PostgreSQL): a stream's
        events are inserted only if its head moved from the expected version (else none of them
        is, and the writer that got there first wins), the outbox rows only for the events."""
        params = {
            "heads": orjson.dumps([
                {"stream_id": stream_id, "expected": expected, "version": version, "head_hash": head_hash}
                for stream_id, expected, version, head_hash in heads
            ]).decode(),
            "events": orjson.dumps([
                {**_event_row(e), "payload": e.to_json().decode(), "ordinal": ordinal}
                for ordinal, e in enumerate(recorded)
            ]).decode(),
            "topic": self.topic,
        }
        position_of = dict(conn.execute(_append(power_of_two_at_least(len(heads))), params).all())
        if len(position_of) != len(recorded):
            stale = sorted({e.streamid for e in recorded if e.id not in position_of})
            raise ConcurrencyConflict(f"stream {', '.join(stale)} moved past the version expected", stream_id=stale[0])
        return [position_of[e.id] for e in recorded]

    def _insert_events(self, conn: Connection, recorded: Sequence[Envelope]) -> list[int]:
        rows = [_event_row(e) for e in recorded]
        result = conn.execute(events.insert().returning(events.c.position, sort_by_parameter_order=True), rows)
        return [row.position for row in result]

    def _project(self, conn: Connection, envelope: Envelope) -> None:
        seen = self.upcasters.upcast(envelope)
        for projection in self.projections:
            projection.apply(conn, seen)

    # -- reading -------------------------------------------------------------------------

    def load(self, conn: Connection, stream_id: str, *, snapshot: str | None = None) -> Stream:
        """The stream as this transaction sees it: its stored events, then any kept (``deferred``);
        with ``snapshot`` (the kind its caller folds), from its snapshot as ``load_many`` does."""
        if snapshot is not None:
            return self.load_many(conn, [stream_id], snapshots={stream_id: snapshot})[stream_id]
        loaded = self._stored(conn, stream_id)
        kept = _kept(conn, self)
        if kept is not None and stream_id in kept.streams:
            loaded.extend(self.upcasters.upcast(e) for e in kept.streams[stream_id])
        return Stream(stream_id, loaded[-1].sequence if loaded else 0, loaded)

    def load_many(
        self, conn: Connection, stream_ids: Sequence[str], *, snapshots: Mapping[str, str] | None = None,
    ) -> dict[str, Stream]:
        """``load`` of several streams in one round trip. With ``snapshots`` (stream id -> the
        kind its caller folds): the stream's snapshot of that kind, when it has one that continues
        its chain, and only the events after it, in the same round trip. A stream ``preload``-ed in
        this transaction (of the same snapshot kind) is not read again."""
        snapshots = snapshots or {}
        kept = _kept(conn, self)
        stored: dict[str, tuple[list[Envelope], Snapshot | None]] = {}
        if kept is not None:
            for stream_id in stream_ids:
                entry = kept.preloaded.get(stream_id)
                if entry is not None and entry[0] == snapshots.get(stream_id):
                    stored[stream_id] = (list(entry[1]), entry[2])
        missing = [stream_id for stream_id in stream_ids if stream_id not in stored]
        if missing:
            stored.update(self._load_stored(conn, missing, {s: k for s, k in snapshots.items() if s in missing}))
        streams = {}
        for stream_id in stream_ids:
            found, snapshot = stored[stream_id]
            version, _ = _stored_head(found, snapshot)
            if kept is not None:
                found.extend(self.upcasters.upcast(e) for e in kept.streams.get(stream_id, ()) if e.sequence > version)
            streams[stream_id] = Stream(stream_id, found[-1].sequence if found else version, found, snapshot)
        return streams

    def preload(
        self, conn: Connection, streams: Mapping[str, str | None] | None = None, heads: Iterable[str] = (),
    ) -> None:
        """Within ``deferred``, read ahead at once what the appends to come will read one by one:
        ``streams`` (stream id -> the snapshot kind its reader folds, or None for every event), as
        ``load_many`` would, and the ``heads`` of streams appended to without being read
        (``append_to_existing``). ``load_many``, ``load`` with a snapshot and the appends' head
        checks then take them from here. What is read ahead is dropped when the kept appends are
        written or a write is made ``immediately``; a writer that commits meanwhile elsewhere is
        refused at the versioned head write, as after any read (``ConcurrencyConflict``).
        Outside ``deferred`` it does nothing."""
        kept = _kept(conn, self)
        if kept is None:
            return
        wanted = {s: k for s, k in (streams or {}).items() if s not in kept.preloaded and s not in kept.streams}
        if wanted:
            loaded = self._load_stored(conn, list(wanted), {s: k for s, k in wanted.items() if k is not None})
            for stream_id, (found, snapshot) in loaded.items():
                kept.preloaded[stream_id] = (wanted[stream_id], found, snapshot)
                kept.stored_heads[stream_id] = _stored_head(found, snapshot)
        read = sorted({s for s in heads if s not in kept.stored_heads and s not in kept.heads})
        if read:
            kept.stored_heads.update({s: (0, None) for s in read})
            size, params = bound_list("stream_ids", read)
            for stream_id, version, head_hash in conn.execute(_select_heads(size), params):
                kept.stored_heads[stream_id] = (version, head_hash)

    def _load_stored(
        self, conn: Connection, stream_ids: Sequence[str], snapshots: Mapping[str, str],
    ) -> dict[str, tuple[list[Envelope], Snapshot | None]]:
        """The streams as stored (kept appends aside): each one's usable snapshot, if asked and
        found, and the events after it (or all of them), upcast."""
        loaded: dict[str, list[Envelope]] = {stream_id: [] for stream_id in stream_ids}
        taken: dict[str, Snapshot] = {}
        if snapshots:
            streams, stream_params = bound_list("stream_ids", stream_ids)
            kinds, kind_params = bound_list("kinds", list(snapshots.items()))
            rows = conn.execute(_select_from_snapshots(streams, kinds), {**stream_params, **kind_params}).all()
        else:
            streams, params = bound_list("stream_ids", stream_ids)
            rows = conn.execute(_select_streams(streams), params).all()
        upcast = self.upcasters.upcast
        for row in rows:
            if row[_EVENT_ID] is None:  # the stream's snapshot, ordered before the events after it
                taken[row[_STREAM_ID]] = Snapshot(row[_KIND], row[_SEQUENCE], row[_HASH], orjson.loads(row[_DATA]))
            else:
                loaded[row[_STREAM_ID]].append(upcast(_envelope_of_tuple(row)))
        for stream_id, snapshot in list(taken.items()):
            after = loaded[stream_id]
            if after and (after[0].sequence != snapshot.version + 1 or after[0].prevhash != snapshot.hash):
                # Not a state of this chain (a snapshot only continues the chain it was taken
                # on): the events decide, every one of them.
                del taken[stream_id]
                loaded[stream_id] = self._stored(conn, stream_id)
        return {stream_id: (found, taken.get(stream_id)) for stream_id, found in loaded.items()}

    def _stored(self, conn: Connection, stream_id: str) -> list[Envelope]:
        """Every stored event of the stream, upcast, in order."""
        rows = conn.execute(_SELECT_STREAM, {"stream_id": stream_id})
        return [self.upcasters.upcast(_envelope_of_tuple(row)) for row in rows]

    def save_snapshot(self, conn: Connection, stream_id: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the stream's, in the caller's transaction, unless the stream
        already has a later one of the same kind."""
        conn.execute(_upsert_snapshot(conn.dialect.name), {
            "stream_id": stream_id, "kind": snapshot.kind, "version": snapshot.version, "hash": snapshot.hash,
            "state": canonical_json(snapshot.state).decode(),
        })

    def snapshot_after(
        self, conn: Connection, stream: Stream, recorded: Sequence[Envelope], kind: str,
        state: Callable[[], Mapping[str, Any]], *, every: int = SNAPSHOT_EVERY,
    ) -> Snapshot | None:
        """After ``recorded`` was appended to ``stream`` (loaded in this transaction): once
        ``every`` events came after the stream's last snapshot, keep ``state()``, the aggregate's
        state with ``recorded`` folded in (asked only then), as its snapshot of ``kind``: at once,
        or within ``deferred`` once the kept events are written."""
        if not recorded:
            return None
        since = stream.snapshot.version if stream.snapshot is not None else 0
        if recorded[-1].sequence - since < every:
            return None
        snapshot = Snapshot(kind, recorded[-1].sequence, recorded[-1].hash, state())
        kept = _kept(conn, self)
        if kept is not None:  # after the stream's head, as every writer of a snapshot row
            kept.snapshots[stream.stream_id] = snapshot
        else:
            self.save_snapshot(conn, stream.stream_id, snapshot)
        return snapshot

    def read_all(self, conn: Connection, *, after: int = 0, batch_size: int = 1000, upcast: bool = True) -> Iterator[Envelope]:
        """Every event in position order (the order they were recorded)."""
        self.flush(conn)
        position = after
        while True:
            rows = conn.execute(
                sa.select(*_ENVELOPE_COLUMNS).where(events.c.position > position).order_by(events.c.position)
                .limit(batch_size)
            ).all()
            for row in rows:
                envelope = _envelope_of_tuple(row)
                yield self.upcasters.upcast(envelope) if upcast else envelope
            if len(rows) < batch_size:
                return
            position = rows[-1][_POSITION]

    def read_stream(self, conn: Connection, stream_id: str, *, after: int = 0, limit: int = 100) -> list[Envelope]:
        """Stored events of one stream after a sequence number, as recorded (not upcast)."""
        self.flush(conn)
        rows = conn.execute(
            sa.select(*_ENVELOPE_COLUMNS)
            .where(events.c.stream_id == stream_id, events.c.sequence > after)
            .order_by(events.c.sequence)
            .limit(limit)
        ).all()
        return [_envelope_of_tuple(row) for row in rows]

    def head_position(self, conn: Connection) -> int:
        """The position of the last event this transaction appended (what a command's response
        reports, for reading one's own writes), else the newest position it can see."""
        self.flush(conn)
        appended = conn.info.get(_LAST_APPENDED)
        if appended is not None and appended[0] is conn.get_transaction():
            return appended[1]
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.position), 0))).scalar_one()

    # -- projections ---------------------------------------------------------------------

    def rebuild_projections(self, conn: Connection, *, batch_size: int = 2000, set_based: bool = True) -> int:
        """Drop every read model's rows and replay all events from zero, in one transaction.

        On PostgreSQL, when every projection has a set-based form that reads the ledger as
        stored, the database computes the read models itself (``pension_shared.bulk_rebuild``;
        ``set_based=False`` declines it). Otherwise events are read in position order as plain
        rows through a server-side cursor and given to each projection ``batch_size`` at a time:
        to its ``apply_batch`` when it has one, else to ``apply`` one by one. A projection reads
        and writes only its own tables, so each still sees every event in order."""
        from pension_shared.bulk_rebuild import rebuild_set_based

        rebuilt = rebuild_set_based(conn, self.projections, self.upcasters) if set_based else None
        if rebuilt is not None:
            return rebuilt
        for projection in self.projections:
            for table in reversed(projection.tables):
                conn.execute(table.delete())
        upcast = self.upcasters.upcast
        replayed = 0
        for rows in batches_of_rows(conn, sa.select(*_ENVELOPE_COLUMNS).order_by(events.c.position), batch_size):
            batch = [upcast(_envelope_of_tuple(row)) for row in rows]
            self.replay(conn, batch)
            replayed += len(batch)
        return replayed

    def replay(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Apply recorded events (upcast, in position order) to every projection: the whole batch
        to a projection's ``apply_batch`` when it has one, else one by one to its ``apply``."""
        for projection in self.projections:
            apply_batch = getattr(projection, "apply_batch", None)
            if apply_batch is not None:
                apply_batch(conn, batch)
            else:
                for envelope in batch:
                    projection.apply(conn, envelope)


OUTBOX_CHANNEL = "pension_outbox"
"""The PostgreSQL notification channel an append notifies, at its commit, of new outbox rows."""

_LAST_APPENDED = "pension.last_appended"
"""Key in the DBAPI connection's ``info``: (the transaction, the position of its last append)."""


_ENVELOPE_COLUMNS = (
    events.c.event_id, events.c.source, events.c.type, events.c.time, events.c.subject, events.c.stream_id,
    events.c.sequence, events.c.data, events.c.prevhash, events.c.hash, events.c.correlation_id,
    events.c.causation_id, events.c.position,
)
"""The columns every read of events selects first, in the order of ``Envelope``'s fields: a row
is read by unpacking it, a quarter of the Python of reading its thirteen columns by name (20 µs
an event, which made a load of 30 events cost 1.2 ms)."""
_EVENT_ID, _STREAM_ID, _SEQUENCE, _DATA, _HASH, _POSITION = (
    [c.name for c in _ENVELOPE_COLUMNS].index(name) for name in ("event_id", "stream_id", "sequence", "data", "hash", "position")
)
_KIND = len(_ENVELOPE_COLUMNS)
"""In ``_select_from_snapshots``'s rows: the snapshot's kind, after the envelope's columns."""


def _envelope_of_tuple(row: Sequence[Any]) -> Envelope:
    """The envelope of a row whose first columns are ``_ENVELOPE_COLUMNS``."""
    id_, source, type_, time, subject, streamid, sequence, data, prevhash, hash_, correlation, causation, position = \
        row[:_KIND]
    return Envelope(id_, source, type_, time, subject, streamid, sequence, orjson.loads(data), prevhash, hash_,
                    correlation, causation, position)


# Built once: building a statement (and its cache key) costs more Python than running it.
_SELECT_HEAD = sa.select(stream_heads.c.version, stream_heads.c.head_hash).where(
    stream_heads.c.stream_id == sa.bindparam("stream_id"))
_SELECT_STREAM = sa.select(*_ENVELOPE_COLUMNS).where(events.c.stream_id == sa.bindparam("stream_id")).order_by(
    events.c.sequence)


@functools.lru_cache(maxsize=None)
def _select_heads(streams: int) -> sa.Select:
    """The heads of ``streams`` streams, bound as ``stream_ids`` (``bound_list``)."""
    return sa.select(stream_heads.c.stream_id, stream_heads.c.version, stream_heads.c.head_hash).where(
        in_list(stream_heads.c.stream_id, "stream_ids", streams))


@functools.lru_cache(maxsize=None)
def _select_streams(streams: int) -> sa.Select:
    """Every event of ``streams`` streams, bound as ``stream_ids``, by stream and sequence."""
    return sa.select(*_ENVELOPE_COLUMNS).where(in_list(events.c.stream_id, "stream_ids", streams)).order_by(
        events.c.stream_id, events.c.sequence)


def _no(column: sa.Column) -> sa.ColumnElement:
    return sa.cast(sa.null(), column.type).label(column.name)


@functools.lru_cache(maxsize=None)
def _select_from_snapshots(streams: int, kinds: int) -> sa.CompoundSelect:
    """``load_many``'s read from snapshots, in one round trip: each stream's usable snapshot (a
    row with no event id: its version as the sequence, its state as the data, its hash and kind)
    and the events after it, or all of the stream's events without one, by stream and sequence
    (so the snapshot comes before its events); ``streams`` streams bound as ``stream_ids``,
    ``kinds`` (stream id, snapshot kind) pairs as ``kinds``.

    A usable snapshot is of a kind asked and behind its stream's head, or at it with the head's
    hash: a snapshot past the head or off its chain is not used. The read is driven by the
    streams' heads (every stream with events has one, written with them), so the events are
    found through the index on (stream_id, sequence) from the snapshot's version on, where a
    condition on each stream's floor had the whole stream read and filtered: a long stream costs
    only the events after its snapshot."""
    usable = (
        sa.select(snapshots.c.stream_id, snapshots.c.kind, snapshots.c.version, snapshots.c.hash, snapshots.c.state)
        .join(stream_heads, stream_heads.c.stream_id == snapshots.c.stream_id)
        .where(
            in_list(sa.tuple_(snapshots.c.stream_id, snapshots.c.kind), "kinds", kinds),
            (stream_heads.c.version > snapshots.c.version)
            | ((stream_heads.c.version == snapshots.c.version) & (stream_heads.c.head_hash == snapshots.c.hash)),
        )
        .cte("usable")
    )
    as_row = {
        "stream_id": usable.c.stream_id, "sequence": usable.c.version.label("sequence"),
        "data": usable.c.state.label("data"), "hash": usable.c.hash,
    }
    return sa.union_all(
        sa.select(*_ENVELOPE_COLUMNS, _no(snapshots.c.kind))
        .select_from(
            stream_heads
            .outerjoin(usable, usable.c.stream_id == stream_heads.c.stream_id)
            .join(events, (events.c.stream_id == stream_heads.c.stream_id)
                  & (events.c.sequence > sa.func.coalesce(usable.c.version, 0)))
        )
        .where(in_list(stream_heads.c.stream_id, "stream_ids", streams)),
        sa.select(*(as_row.get(c.name, _no(c)) for c in _ENVELOPE_COLUMNS), usable.c.kind),
    ).order_by("stream_id", "sequence")


@functools.lru_cache(maxsize=None)
def _upsert_snapshot(dialect: str) -> Any:
    statement = dialect_insert(dialect, snapshots)
    changed = ("kind", "version", "hash", "state")
    return statement.on_conflict_do_update(
        index_elements=[snapshots.c.stream_id], set_={name: statement.excluded[name] for name in changed},
        where=(snapshots.c.version < statement.excluded.version) | (snapshots.c.kind != statement.excluded.kind),
    )


_HEAD_COLUMNS = "stream_id varchar, expected integer, version integer, head_hash varchar"
_EVENT_COLUMNS = (
    "event_id varchar, stream_id varchar, sequence integer, type varchar, source varchar, subject varchar, "
    "time varchar, data text, correlation_id varchar, causation_id varchar, prevhash varchar, hash varchar, "
    "payload text, ordinal integer"
)
_STORED = "event_id, stream_id, sequence, type, source, subject, time, data, correlation_id, causation_id, prevhash, hash"
_APPEND = (
    f"WITH heads AS (SELECT * FROM json_to_recordset(CAST(:heads AS json)) AS h ({_HEAD_COLUMNS}) LIMIT {{heads}}), "
    "updated AS (UPDATE stream_heads s SET version = h.version, head_hash = h.head_hash FROM heads h "
    "WHERE h.expected > 0 AND s.stream_id = h.stream_id AND s.version = h.expected RETURNING s.stream_id), "
    "created AS (INSERT INTO stream_heads (stream_id, version, head_hash) "
    "SELECT stream_id, version, head_hash FROM heads WHERE expected = 0 ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id), "
    "moved AS (SELECT stream_id FROM updated UNION ALL SELECT stream_id FROM created), "
    f"new_events AS (SELECT * FROM json_to_recordset(CAST(:events AS json)) AS n ({_EVENT_COLUMNS})), "
    f"inserted AS (INSERT INTO events ({_STORED}) "
    f"SELECT {', '.join('n.' + name for name in _STORED.split(', '))} FROM new_events n JOIN moved USING (stream_id) "
    "ORDER BY n.ordinal RETURNING event_id, position), "
    "published AS (INSERT INTO outbox (event_id, topic, key, payload) "
    "SELECT n.event_id, CAST(:topic AS varchar), n.subject, convert_to(n.payload, 'UTF8') "
    "FROM inserted JOIN new_events n USING (event_id) ORDER BY inserted.position), "
    # Delivered at commit, to the relay waiting for outbox rows (none if rolled back).
    f"notified AS (SELECT pg_notify('{OUTBOX_CHANNEL}', '')) "
    "SELECT event_id, position FROM inserted, notified"
)
"""``EventStore._write_in_one_statement``'s SQL, one text for up to ``{heads}`` streams and any number of events:
data-modifying CTEs, each stream's events inserted in order (so positions follow sequences) only
if its head was written, the outbox rows only for the events inserted. The heads and the events
come as two JSON documents (an array of objects each), which the server reads in one pass each:
given as a dozen arrays of text instead, psycopg's quoting of every element cost more Python than
the rest of an append (0.4 ms of a two-event append, against 0.02 ms for orjson's documents)."""


@functools.lru_cache(maxsize=None)
def _append(heads: int) -> sa.TextClause:
    """``_APPEND`` for ``heads`` streams at most (a power of two: a text each). The LIMIT only
    tells the planner how many heads the document holds, never fewer than it does: a function's
    rows are estimated at 100, and for 33 heads to move (a third of them) PostgreSQL scanned the
    whole of ``stream_heads`` and hashed it rather than look each head up in its index, as soon
    as the table had fewer than some thousands of streams (0.3 ms of an append's 0.7 ms at 2,000
    streams, EXPLAIN ANALYZE; 0.2 ms with the LIMIT)."""
    return sa.text(_APPEND.format(heads=heads))


class _Kept:
    """Appends kept by ``EventStore.deferred``, in the order they were made."""

    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, int, str]] = {}
        """stream id -> (the version it was at, its version now, its head hash now)"""
        self.events: list[Envelope] = []
        self.streams: dict[str, list[Envelope]] = {}
        """The kept events of each stream."""
        self.snapshots: dict[str, Snapshot] = {}
        """Snapshots of streams with kept events, written after them: a transaction locks a
        stream's snapshot row only once it holds the stream's head, so two never wait for each
        other's in opposite orders."""
        self.preloaded: dict[str, tuple[str | None, list[Envelope], Snapshot | None]] = {}
        """Streams read ahead (``preload``): the snapshot kind asked, the stored events (after
        the snapshot, if one was used) and the snapshot."""
        self.stored_heads: dict[str, tuple[int, str | None]] = {}
        """Heads read ahead, or of the streams read ahead: the stored version and head hash
        ((0, None) for no stream)."""

    def forget_read_ahead(self) -> None:
        self.preloaded, self.stored_heads = {}, {}

    def add(self, stream_id: str, expected: int, recorded: Sequence[Envelope]) -> None:
        first = self.heads.get(stream_id)
        if first is not None and first[1] != expected:  # as the database would refuse it
            raise ConcurrencyConflict(f"stream {stream_id} is at version {first[1]}, not {expected}", stream_id=stream_id)
        self.heads[stream_id] = (first[0] if first else expected, recorded[-1].sequence, recorded[-1].hash)
        self.events.extend(recorded)
        self.streams.setdefault(stream_id, []).extend(recorded)


_KEPT = "pension.kept_appends"
"""Key in the DBAPI connection's ``info``: (the store, its ``_Kept``) while ``deferred``."""


def _stored_head(found: Sequence[Envelope], snapshot: Snapshot | None) -> tuple[int, str | None]:
    """The version and head hash of a stream loaded as stored: its last event's, else its
    snapshot's (loaded at the head), else none (no stream)."""
    if found:
        return found[-1].sequence, found[-1].hash
    return (snapshot.version, snapshot.hash) if snapshot is not None else (0, None)


def _kept(conn: Connection, store: EventStore) -> _Kept | None:
    entry = conn.info.get(_KEPT)
    return entry[1] if entry is not None and entry[0] is store else None


def _event_row(e: Envelope) -> dict[str, Any]:
    """The ``events`` row of an envelope, as both writers store it (data as canonical JSON)."""
    return {
        "event_id": e.id, "stream_id": e.streamid, "sequence": e.sequence, "type": e.type, "source": e.source,
        "subject": e.subject, "time": e.time, "data": canonical_json(e.data).decode(),
        "correlation_id": e.correlationid, "causation_id": e.causationid, "prevhash": e.prevhash, "hash": e.hash,
    }


def _with_position(envelope: Envelope, position: int) -> Envelope:
    return Envelope(**{**envelope.__dict__, "position": position})


__all__ = ["EventStore", "Metadata", "NewEvent", "Projection", "Snapshot", "Stream", "EventType"]
