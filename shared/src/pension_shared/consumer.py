"""The inbox consumer: applies other services' events exactly once in effect.

For each record: the inbox row and the handler's effects are written together (a duplicate
delivery finds its inbox row and is skipped), and the offset is committed to the log only after
they are. Records are applied in batches, one transaction per batch: one commit (one WAL flush)
for many records. A batch is first applied as it comes, without savepoints (two round trips
fewer per record); if any record of it fails, that transaction is rolled back whole and the batch
applied again carefully, a savepoint per record, so a record that fails takes back only its own
writes. When a careful batch stops midway, what came before the failing record is committed and
the rest redelivered. A message that cannot be parsed, or whose handler keeps
failing, is parked in ``<topic>.dlq`` with its error and its offset committed, so it does not
block other participants' messages. Infrastructure failures (the database unreachable) are not
the message's fault: the batch is redelivered later instead of being dead-lettered."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, ContextManager, Mapping, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from pension_shared.db import insert_ignoring_duplicates
from pension_shared.envelope import Envelope, MalformedEvent, Upcasters, parse_cloudevent
from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import EventStore
from pension_shared.messaging import IncomingRecord, OutgoingRecord, Publisher, Subscription, dlq_topic
from pension_shared.problems import correlation_id
from pension_shared.read_positions import highest_positions, raised, record_positions
from pension_shared.schema import inbox

log = logging.getLogger(__name__)

Policy = Callable[[Connection, Envelope], None]

POSITIONS_WAIT_S = 0.1
"""How long the positions of a batch the consumer had no policy for may wait to be recorded with
the next batch it applies, before they are recorded on their own."""


def reads_only_streams(
    policy: Policy | None = None, *, streams: Callable[[Envelope], Mapping[str, str | None]] | None = None,
    heads: Callable[[Envelope], Sequence[str]] | None = None,
) -> Any:
    """Mark a policy that reads nothing but event streams, through the store (no read model):
    applying a batch, the consumer keeps such policies' appends and writes them together at the
    end (``EventStore.deferred``). Any other policy first has the kept appends written.

    With ``streams`` (the streams it will load for an event: stream id -> the snapshot kind it
    folds, or None) and ``heads`` (the streams it will append to without reading them), the
    consumer reads those of the whole batch ahead (``EventStore.preload``: the snapshots, the
    events and the heads, a statement each) instead of one or two statements per event. Used
    as ``@reads_only_streams`` or ``@reads_only_streams(...)``."""

    def mark(policy: Policy) -> Policy:
        policy.reads_only_streams = True  # type: ignore[attr-defined]
        policy.reads_ahead = (streams, heads)  # type: ignore[attr-defined]
        return policy

    return mark(policy) if policy is not None else mark


@dataclass(frozen=True)
class Outcome:
    processed: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0


class _NeedsCare(Exception):
    """A record the batch cannot apply as it comes (a message to park)."""


class InfrastructureUnavailable(RuntimeError):
    """The consumer's own database failed; the batch will be redelivered."""


class InboxConsumer:
    def __init__(
        self,
        *,
        name: str,
        engine: Engine,
        subscription: Subscription,
        policies: Mapping[str, Policy],
        dead_letters: Publisher,
        upcasters: Upcasters | None = None,
        max_attempts: int = 3,
        batch_size: int | None = None,
        store: EventStore | None = None,
        ledgers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._engine = engine
        self._subscription = subscription
        self._policies = dict(policies)
        self._dead_letters = dead_letters
        self._upcasters = upcasters or Upcasters()
        self._max_attempts = max_attempts
        self._store = store
        """The service's event store: with it, a batch's appends are written together."""
        self._ledgers = dict(ledgers or {})
        """The ledger whose events each topic carries: how far the consumer has applied each is
        recorded with what it applied (``pension_shared.read_positions``)."""
        self._positions_waiting: dict[tuple[str, str], int] = {}
        """The positions of ignored batches not yet recorded (``_record_waiting_positions``)."""
        self._waiting_since: float | None = None
        self._uncommitted: list[IncomingRecord] = []
        """Applied records whose offsets the log did not take (it was unreachable), the last of
        each partition: committed with the next offsets, or on their own at the next poll."""
        # SQLite serialises writers: keep its write lock for a few records at a time only.
        self._batch_size = batch_size or (100 if engine.dialect.name == "postgresql" else 10)

    def consume_once(self, *, timeout_s: float = 0.5, max_records: int = 500) -> Outcome:
        if self._waiting_since is not None:  # not longer than they may wait
            timeout_s = min(timeout_s, max(0.0, self._waiting_since + POSITIONS_WAIT_S - time.monotonic()))
        records = self._subscription.poll(timeout_s, max_records)
        counts = {"processed": 0, "duplicates": 0, "ignored": 0, "dead_lettered": 0}
        done: list[IncomingRecord] = []
        try:
            for start in range(0, len(records), self._batch_size):
                self._apply_batch(records[start:start + self._batch_size], counts, done)
        except Exception:
            # Whatever stopped the batch (the database gone, the DLQ unpublishable), make the
            # rest come back (the log has already moved past them), then keep what was applied.
            # The seek comes first: when the broker is gone too, the commit fails, and had it
            # come first the rest would have been skipped for good (found by ``make chaos``).
            self._seek_back(records[len(done):])
            try:
                self._commit(done)
            except Exception:  # committed at a later poll; a redelivery meanwhile is a duplicate
                log.warning("consumer %s: could not commit the offsets of %d applied record(s)", self.name, len(done))
            raise
        self._commit(done)
        self._record_waiting_positions(idle=not records)
        return Outcome(**counts)

    def _record_waiting_positions(self, *, idle: bool) -> None:
        """Record the positions of ignored batches that no applied batch took along, once the log
        has nothing more or they have waited ``POSITIONS_WAIT_S``. A batch of only events this
        service has no policy for changes nothing here: its positions only spare a read the wait.
        Recorded in a transaction of its own for each such batch, they cost the payout consumer
        (which has no policy for contributions) a commit and a WAL flush a poll under load. Should
        the process stop first, a read given one of them waits out ``WAIT_S`` and then answers
        what it would have answered anyway."""
        if self._waiting_since is None or not (idle or time.monotonic() - self._waiting_since >= POSITIONS_WAIT_S):
            return
        try:
            with self._engine.begin() as conn:
                record_positions(conn, self._positions_waiting)
        except Exception:  # noqa: BLE001 - kept, and tried again at the next poll
            log.warning("consumer %s: could not record the positions of %d ignored participant(s)",
                        self.name, len(self._positions_waiting))
            return
        self._nothing_waiting()

    def _with_waiting(self, highest: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        return raised(self._positions_waiting, highest)

    def _nothing_waiting(self) -> None:
        """The waiting positions were recorded: on their own, or with an applied batch."""
        self._positions_waiting, self._waiting_since = {}, None

    def _commit(self, done: Sequence[IncomingRecord]) -> None:
        """Commit the offsets past ``done`` and past the applied records whose commit failed
        before. When it fails, they are kept and tried again at every poll: the last records of
        a partition that gets no more would otherwise stay uncommitted, behind for good (found
        by ``make chaos``: a broker restart during the commit left a consumer one record behind)."""
        waiting = [*self._uncommitted, *done]
        if not waiting:
            return
        try:
            self._subscription.commit(waiting)
        except Exception:
            last: dict[tuple[str, int], IncomingRecord] = {}
            for record in waiting:
                if record.offset >= last.get((record.topic, record.partition), record).offset:
                    last[(record.topic, record.partition)] = record
            self._uncommitted = list(last.values())
            raise
        self._uncommitted = []

    def _apply_batch(self, batch: Sequence[IncomingRecord], counts: dict[str, int], done: list[IncomingRecord]) -> None:
        handled = self._apply_as_it_comes(batch)
        if handled is None:
            self._apply_carefully(batch, counts, done)
            return
        for record, outcome in handled:
            counts[outcome] += 1
            done.append(record)

    def _apply_as_it_comes(self, batch: Sequence[IncomingRecord]) -> list[tuple[IncomingRecord, str]] | None:
        """The batch in one transaction without savepoints, or ``None`` (nothing applied) when a
        record of it cannot be applied so: it fails, or is to be parked, or the database fails.
        Events this service has no policy for are ignored without an inbox row (they have no
        effect to keep from happening twice); a batch of only those needs no transaction."""
        parsed: list[tuple[IncomingRecord, Envelope]] = []
        for record in batch:
            try:
                parsed.append((record, self._upcasters.upcast(parse_cloudevent(record.value))))
            except Exception:  # malformed, or its upcaster fails: the careful path parks it
                return None
        acting = [(record, envelope) for record, envelope in parsed if envelope.type in self._policies]
        outcomes: dict[tuple[str, int, int], str] = {}
        if acting:
            try:
                with self._engine.begin() as conn, self._kept_together(conn):
                    claimed = self._claim_all(conn, acting)
                    self._read_ahead(conn, [envelope for _, envelope in acting if envelope.id in claimed])
                    for record, envelope in acting:
                        correlation = correlation_id.set(envelope.correlationid)
                        try:
                            if envelope.id in claimed:
                                claimed.discard(envelope.id)  # a second copy in the batch is a duplicate
                                self._apply_in_batch(conn, self._policies[envelope.type], envelope)
                                outcomes[_key(record)] = "processed"
                            else:
                                outcomes[_key(record)] = "duplicates"
                        finally:
                            correlation_id.reset(correlation)
                    record_positions(conn, self._with_waiting(highest_positions(batch, self._ledgers)))
            except Exception as exc:  # the careful path tells the message's fault from the database's
                log.info("consumer %s: a batch of %d failed (%s); applying it record by record",
                         self.name, len(batch), type(exc).__name__)
                return None
            self._nothing_waiting()
        elif highest := highest_positions(batch, self._ledgers):
            self._positions_waiting = self._with_waiting(highest)
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
        handled = [(record, outcomes.get(_key(record), "ignored")) for record, _ in parsed]
        if log.isEnabledFor(logging.DEBUG):
            for (record, outcome), (_, envelope) in zip(handled, parsed):
                correlation = correlation_id.set(envelope.correlationid)  # each line under its request's id
                try:
                    log.debug("consumer %s: %s %s %s", self.name, envelope.type, envelope.id, outcome)
                finally:
                    correlation_id.reset(correlation)
        return handled

    def _read_ahead(self, conn: Connection, envelopes: Sequence[Envelope]) -> None:
        """What the batch's stream-reading policies will read, read at once (``reads_only_streams``
        with ``streams`` or ``heads``). An event its hint cannot name streams for (its data is not
        what the policy expects) is left to its policy, which reads for itself."""
        if self._store is None:
            return
        streams: dict[str, str | None] = {}
        heads: set[str] = set()
        for envelope in envelopes:
            wants_streams, wants_heads = getattr(self._policies[envelope.type], "reads_ahead", (None, None))
            try:
                if wants_streams is not None:
                    streams.update(wants_streams(envelope))
                if wants_heads is not None:
                    heads.update(wants_heads(envelope))
            except Exception:  # noqa: BLE001 - a hint only: the policy meets the same data and says why
                continue
        if streams or heads:
            self._store.preload(conn, streams, heads)

    def _kept_together(self, conn: Connection) -> ContextManager[None]:
        return self._store.deferred(conn) if self._store is not None else contextlib.nullcontext()

    def _apply_in_batch(self, conn: Connection, policy: Policy, envelope: Envelope) -> None:
        if self._store is None or getattr(policy, "reads_only_streams", False):
            policy(conn, envelope)
            return
        self._store.flush(conn)  # it may read read models: they have every earlier effect
        with self._store.immediately(conn):
            policy(conn, envelope)

    def _apply_carefully(self, batch: Sequence[IncomingRecord], counts: dict[str, int], done: list[IncomingRecord]) -> None:
        """The batch in one transaction, each record in its own savepoint. A record that raises
        ends the batch: the records before it are committed, then the error goes on."""
        handled: list[tuple[IncomingRecord, str]] = []
        failure: Exception | None = None
        try:
            with self._engine.begin() as conn:
                for record in batch:
                    try:
                        handled.append((record, self._handle(conn, record)))
                    except Exception as exc:
                        failure = exc
                        break
                record_positions(conn, self._with_waiting(
                    highest_positions([record for record, _ in handled], self._ledgers)))
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of the batch is applied
            if _is_infrastructure_failure(exc):
                raise InfrastructureUnavailable(str(exc)) from exc
            raise
        self._nothing_waiting()
        for record, outcome in handled:
            counts[outcome] += 1
            done.append(record)
        if failure is not None:
            raise failure

    def _seek_back(self, records: Sequence[IncomingRecord]) -> None:
        seek_back = getattr(self._subscription, "seek_back", None)
        if seek_back is not None and records:
            seek_back(records)

    def _handle(self, conn: Connection, record: IncomingRecord) -> str:
        try:
            envelope = parse_cloudevent(record.value)
        except MalformedEvent as exc:
            self._dead_letter(record, f"malformed event: {exc}", attempts=1)
            return "dead_lettered"
        try:
            envelope = self._upcasters.upcast(envelope)
        except Exception as exc:  # an upcaster that cannot read this event: it is poison too
            error = "".join(traceback.format_exception_only(exc)).strip()
            self._dead_letter(record, f"upcasting failed: {error}", attempts=1, envelope=envelope)
            return "dead_lettered"
        # The event's correlation id follows it into this service's logs and the events it causes.
        correlation = correlation_id.set(envelope.correlationid)
        try:
            return self._apply_with_retries(conn, record, envelope)
        finally:
            correlation_id.reset(correlation)

    def _apply_with_retries(self, conn: Connection, record: IncomingRecord, envelope: Envelope) -> str:
        policy = self._policies.get(envelope.type)
        last_error = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                with conn.begin_nested():
                    outcome = self._apply(conn, record, envelope, policy)
                log.debug("consumer %s: %s %s %s", self.name, envelope.type, envelope.id, outcome)
                return outcome
            except ConcurrencyConflict as exc:
                last_error = f"ConcurrencyConflict: {exc}"
            except Exception as exc:  # a poison message: park it, do not block the others
                if _is_infrastructure_failure(exc):
                    raise InfrastructureUnavailable(str(exc)) from exc
                last_error = "".join(traceback.format_exception_only(exc)).strip()
                log.warning("consumer %s: attempt %d for %s failed: %s", self.name, attempt, envelope.id, last_error)
        self._dead_letter(record, last_error, attempts=self._max_attempts, envelope=envelope)
        return "dead_lettered"

    def _apply(self, conn: Connection, record: IncomingRecord, envelope: Envelope, policy: Policy | None) -> str:
        if policy is None:  # no effect to keep from happening twice: no inbox row
            return "ignored"
        if not self._claim_all(conn, [(record, envelope)]):
            return "duplicates"
        return self._applied(conn, envelope, policy)

    def _claim_all(self, conn: Connection, parsed: Sequence[tuple[IncomingRecord, Envelope]]) -> set[str]:
        """The inbox rows of these events, in one statement: the ids of those not seen before."""
        rows = [
            {"consumer": self.name, "event_id": envelope.id, "topic": record.topic, "partition": record.partition,
             "offset": record.offset}
            for record, envelope in parsed
        ]
        if conn.dialect.name == "postgresql":
            return set(conn.execute(_CLAIM_ALL, {"rows": orjson.dumps(rows).decode()}).scalars())
        return set(conn.execute(_inbox_claim(conn.dialect.name), rows).scalars())

    @staticmethod
    def _applied(conn: Connection, envelope: Envelope, policy: Policy | None) -> str:
        if policy is None:
            return "ignored"
        policy(conn, envelope)
        return "processed"

    def _dead_letter(self, record: IncomingRecord, error: str, *, attempts: int, envelope: Envelope | None = None) -> None:
        log.error("consumer %s: parking %s[%d]@%d in %s: %s", self.name, record.topic, record.partition,
                  record.offset, dlq_topic(record.topic), error)
        letter = {
            "consumer": self.name,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "event_id": envelope.id if envelope else None,
            "event_type": envelope.type if envelope else None,
            "error": error,
            "attempts": attempts,
            "failed_at": datetime.now(timezone.utc).isoformat(),
            "value": record.value.decode("utf-8", errors="replace"),
        }
        self._dead_letters.publish([OutgoingRecord(dlq_topic(record.topic), record.key, orjson.dumps(letter))])

    def run(self, stop: threading.Event, *, error_backoff_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.consume_once()
            except Exception:  # the consumer must outlive a database or broker outage
                log.exception("consumer %s failed; retrying", self.name)
                stop.wait(error_backoff_s)

    def close(self) -> None:
        self._record_waiting_positions(idle=True)
        self._subscription.close()


def _key(record: IncomingRecord) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


@functools.lru_cache(maxsize=None)
def _inbox_claim(dialect: str) -> Any:
    """INSERT INTO inbox ... ON CONFLICT DO NOTHING RETURNING event_id, built once per dialect."""
    return insert_ignoring_duplicates(dialect, inbox).returning(inbox.c.event_id)


_CLAIM_ALL = sa.text(
    'INSERT INTO inbox (consumer, event_id, topic, "partition", "offset") '
    'SELECT consumer, event_id, topic, "partition", "offset" FROM json_to_recordset(CAST(:rows AS json)) '
    'AS r (consumer varchar, event_id varchar, topic varchar, "partition" integer, "offset" bigint) '
    "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id"
)
"""``_inbox_claim`` on PostgreSQL, the rows given as one JSON document: a batch's claim as a
multi-row INSERT had psycopg dump five parameters per record (10 % of the account consumer's
CPU); a second copy of an event in the batch is not inserted, as there."""


def _is_infrastructure_failure(exc: Exception) -> bool:
    """The database went away (not the message's fault): retry later instead of parking."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
