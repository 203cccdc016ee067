"""The operations ledger: what operators did to the event flow (a dead letter retried or
skipped), recorded as events on the stream ``ops-dlq`` of the account service's store, so the
record is hash-chained and audited by ``pension ledger verify`` like every other event.

These events are the platform's own audit trail, not part of any topic's public contract: they
are not published (their outbox rows are removed in the same transaction), and no projection
reads them. Which letters were handled is derived from this stream, so a retried or skipped
letter is never offered again."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime, timezone

from sqlalchemy.engine import Engine

from pension_shared.clock import rfc3339
from pension_shared.envelope import Envelope
from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.schema import outbox

OPS_STREAM = "ops-dlq"
DEAD_LETTER_RETRIED = "DeadLetterRetried"
DEAD_LETTER_SKIPPED = "DeadLetterSkipped"


def operator_identity(explicit: str | None = None) -> str:
    return explicit or os.environ.get("PENSION_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _store() -> EventStore:
    return EventStore(service="account", topic="pension.account")


def record_operation(engine: Engine, name: str, data: dict, *, attempts: int = 5) -> Envelope:
    store = _store()
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                stream = store.load(conn, OPS_STREAM)
                meta = Metadata(time=rfc3339(datetime.now(timezone.utc)))
                [recorded] = store.append(conn, OPS_STREAM, stream.version, [NewEvent(name, data, subject="operations")], meta)
                conn.execute(outbox.delete().where(outbox.c.event_id == recorded.id))
                return recorded
        except ConcurrencyConflict:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def handled_letters(engine: Engine) -> dict[str, Envelope]:
    """Letter id → the operation that handled it."""
    with engine.connect() as conn:
        stream = _store().load(conn, OPS_STREAM)
    return {e.data["letter"]: e for e in stream.events}


def letter_id(dlq_topic: str, partition: int, offset: int) -> str:
    return f"{dlq_topic}:{partition}:{offset}"

