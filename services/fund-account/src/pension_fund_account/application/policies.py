"""How the fund-account service reacts to other services' events (one policy per consumed event)."""

from __future__ import annotations

from typing import Callable

from sqlalchemy.engine import Connection

from pension_fund_account.domain.events import PARTICIPANT_RECOGNISED, participant_stream
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent

PARTICIPANT_REGISTERED = "cn.pension.account.ParticipantRegistered.v1"

Policy = Callable[[Connection, Envelope], None]


def on_participant_registered(store: EventStore) -> Policy:
    def policy(conn: Connection, source: Envelope) -> None:
        data = source.data
        stream = store.load(conn, participant_stream(data["participant_id"]))
        if stream.version:
            return
        recorded = {
            "participant_id": data["participant_id"],
            "insurance_type": data["insurance_type"],
            "insured_region": data["insured_region"],
            "registered_at": data["registered_at"],
        }
        meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
        store.append(conn, stream.stream_id, 0, [NewEvent(PARTICIPANT_RECOGNISED, recorded, subject=source.subject)], meta)

    return policy


def policies(store: EventStore) -> dict[str, Policy]:
    return {PARTICIPANT_REGISTERED: on_participant_registered(store)}
