"""Withdrawal applications, the agency's decisions, and death registration: one handler each,
each in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy.engine import Connection

from pension_account.domain.id_number import parse_id_number
from pension_account.domain.participant import participant_stream
from pension_account.domain.withdrawal import (
    PARTICIPANT_DIED, PARTICIPANT_RECEIVING, WITHDRAWAL_APPLIED, Heir, ParticipantLife, WithdrawalApplication,
    application_stream,
)
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.pii import PersonalDataKey, mask_account_number


def _life(store: EventStore, conn: Connection, participant_id: str):  # noqa: ANN202
    stream = store.load(conn, participant_stream(participant_id))
    return stream, ParticipantLife.from_events((e.event_type.name, e.data) for e in stream.events)


def apply_for_withdrawal(
    conn: Connection, store: EventStore, *, participant_id: str, condition: str, evidence: list[str],
    channel: str, meta: Metadata,
) -> str:
    _, life = _life(store, conn, participant_id)
    application_id = f"WA{uuid.uuid4().hex[:20].upper()}"
    applied = life.apply_for_withdrawal(
        application_id=application_id, participant_id=participant_id, condition=condition, evidence=evidence,
        on=business_date(parse_rfc3339(meta.time)), applied_at=meta.time, channel=channel,
    )
    store.append(conn, application_stream(application_id), 0, [NewEvent(WITHDRAWAL_APPLIED, applied, subject=participant_id)], meta)
    return application_id


def decide_withdrawal(
    conn: Connection, store: EventStore, *, application_id: str, decision: str, reason: str | None,
    agency_region: str, meta: Metadata,
) -> str:
    stream = store.load(conn, application_stream(application_id))
    application = WithdrawalApplication.from_events(application_id, ((e.event_type.name, e.data) for e in stream.events))
    decided = application.decide(decision=decision, reason=reason, agency_region=agency_region, decided_at=meta.time)
    participant, life = _life(store, conn, application.participant_id)
    if decision == "approved":
        life.may_be_approved()
    for_application = [NewEvent(n, d, subject=application.participant_id) for n, d in decided if n != PARTICIPANT_RECEIVING]
    store.append(conn, stream.stream_id, stream.version, for_application, meta)
    receiving = [NewEvent(n, d, subject=application.participant_id) for n, d in decided if n == PARTICIPANT_RECEIVING]
    if receiving:
        if life.receives(receiving[0].data):
            store.append(conn, participant.stream_id, participant.version, receiving, meta)
    return WithdrawalApplication.from_events(
        application_id, [(e.event_type.name, e.data) for e in stream.events] + [(n, d) for n, d in decided]
    ).status


@dataclass(frozen=True)
class HeirInput:
    name: str
    id_number: str
    share: str
    bank_code: str
    account_number: str


def register_death(
    conn: Connection, store: EventStore, pii: PersonalDataKey, *, participant_id: str, date_of_death: date,
    heirs: list[HeirInput], meta: Metadata,
) -> None:
    today = business_date(parse_rfc3339(meta.time))
    for heir in heirs:
        parse_id_number(heir.id_number, today=today)
    stream, life = _life(store, conn, participant_id)
    died = life.register_death(
        participant_id=participant_id, date_of_death=date_of_death, on=today,
        heirs=[Heir(h.share, h.bank_code, mask_account_number(h.account_number)) for h in heirs],
        heirs_sealed=pii.seal({"heirs": [
            {"name": h.name, "id_number": h.id_number.strip().upper(), "share": h.share,
             "bank_code": h.bank_code, "account_number": h.account_number}
            for h in heirs
        ]}),
        registered_at=meta.time,
    )
    store.append(conn, stream.stream_id, stream.version, [NewEvent(PARTICIPANT_DIED, died, subject=participant_id)], meta)
