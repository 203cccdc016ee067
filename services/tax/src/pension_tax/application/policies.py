"""How the tax service reacts to other services' events (one policy per consumed event)."""

from __future__ import annotations

from typing import Callable

from sqlalchemy.engine import Connection

from pension_tax.domain.participants import TAXPAYER_REGISTERED, taxpayer_stream
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.pii import PersonalDataKey

PARTICIPANT_REGISTERED = "cn.pension.account.ParticipantRegistered.v1"

Policy = Callable[[Connection, Envelope], None]


def on_participant_registered(store: EventStore, pii: PersonalDataKey) -> Policy:
    def policy(conn: Connection, source: Envelope) -> None:
        data = source.data
        stream = store.load(conn, taxpayer_stream(data["participant_id"]))
        if stream.version:
            return
        recorded = {
            "participant_id": data["participant_id"],
            **pii.unseal(data["identity_sealed"]),
            "registered_at": data["registered_at"],
        }
        meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
        store.append(conn, stream.stream_id, 0, [NewEvent(TAXPAYER_REGISTERED, recorded, subject=source.subject)], meta)

    return policy


def policies(store: EventStore, pii: PersonalDataKey) -> dict[str, Policy]:
    return {PARTICIPANT_REGISTERED: on_participant_registered(store, pii)}
