"""Loading aggregates from the event store, and the per-participant write lock."""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_fund_account.adapters.tables import fund_accounts
from pension_fund_account.domain.events import participant_stream
from pension_shared.ledger import Stream
from pension_shared.schema import stream_heads


def named_events(stream: Stream) -> list[tuple[str, Mapping[str, Any]]]:
    return [(e.event_type.name, e.data) for e in stream.events]


def lock_stream(conn: Connection, stream_id: str) -> None:
    """Serialise writers of one stream for the rest of the transaction (PostgreSQL row lock;
    SQLite already serialises writers with BEGIN IMMEDIATE). Contributions to one person then
    queue instead of racing, so 50 at once do not exhaust the optimistic retries; the expected
    version check at append stays the guarantee."""
    conn.execute(_LOCK_HEAD, {"stream_id": stream_id})


def lock_participant_of_account(conn: Connection, fund_account_id: str) -> str | None:
    """The participant a fund account belongs to, from the read model kept in the same
    transaction as the events (a fund account's participant never changes), and ``lock_stream``
    of that participant's stream, in one round trip; ``None`` (nothing locked) when the account
    is not known."""
    return conn.execute(_LOCK_PARTICIPANT_OF_ACCOUNT, {"fund_account_id": fund_account_id}).scalar_one_or_none()


# Built once, run on every contribution.
_LOCK_HEAD = sa.select(stream_heads.c.version).where(stream_heads.c.stream_id == sa.bindparam("stream_id")).with_for_update()
_LOCK_PARTICIPANT_OF_ACCOUNT = (
    sa.select(fund_accounts.c.participant_id)
    .join(stream_heads, stream_heads.c.stream_id == sa.literal(participant_stream("")) + fund_accounts.c.participant_id)
    .where(fund_accounts.c.fund_account_id == sa.bindparam("fund_account_id"))
    .with_for_update(of=stream_heads)
)
