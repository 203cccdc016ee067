"""Registering a participant: one handler, one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from pension_account.domain.id_number import IdNumber, parse_id_number
from pension_account.domain.insurance import InsuranceRecord, NotInsured, require_insured
from pension_account.domain.participant import (
    ID_NUMBER_CLAIMED, PARTICIPANT_REGISTERED, IdNumberClaim, Registration, id_number_stream,
    participant_stream, register,
)
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.pii import PersonalDataKey, mask_account_number, mask_id_number


@dataclass(frozen=True)
class RegisterParticipant:
    id_number: str
    name: str
    insurance_type: str
    insured_region: str
    ss_card_bank_code: str
    ss_card_account_number: str
    channel: str
    registered_by: str


def valid_id_number(raw: str, meta: Metadata) -> IdNumber:
    """The ID number checked against the business date (a date of birth cannot be later)."""
    return parse_id_number(raw, today=business_date(parse_rfc3339(meta.time)))


def register_participant(
    conn: Connection,
    store: EventStore,
    pii: PersonalDataKey,
    cmd: RegisterParticipant,
    insurance: InsuranceRecord | None,
    meta: Metadata,
) -> str:
    """Register the person whose basic pension insurance the registry answered ``insurance``
    (looked up before the transaction: no I/O to another system while it is open)."""
    now = meta.time
    id_number = valid_id_number(cmd.id_number, meta)
    if insurance is None:
        raise NotInsured("the social insurance registry has no basic pension insurance for this person")
    insured = require_insured(insurance)
    digest = pii.digest(id_number.value)
    claim_stream = store.load(conn, id_number_stream(digest))
    claim = IdNumberClaim.from_events((e.event_type.name, e.data) for e in claim_stream.events)
    participant_id = f"P{uuid.uuid4().hex[:20].upper()}"
    claimed = claim.claim(participant_id, digest)
    registered = register(Registration(
        participant_id=participant_id,
        id_number_digest=digest,
        id_number_masked=mask_id_number(id_number.value),
        identity_sealed=pii.seal({"id_number": id_number.value, "name": cmd.name}),
        payee_sealed=pii.seal({"bank_code": cmd.ss_card_bank_code, "account_number": cmd.ss_card_account_number}),
        insurance_type=insured.insurance_type or cmd.insurance_type,
        insured_region=insured.insured_region or cmd.insured_region,
        channel=cmd.channel,
        ss_card_bank_code=cmd.ss_card_bank_code,
        ss_card_account_masked=mask_account_number(cmd.ss_card_account_number),
        registered_at=now,
        registered_by=cmd.registered_by,
    ))
    store.append(conn, claim_stream.stream_id, claim_stream.version,
                 [NewEvent(ID_NUMBER_CLAIMED, claimed, subject=participant_id)], meta)
    store.append(conn, participant_stream(participant_id), 0,
                 [NewEvent(PARTICIPANT_REGISTERED, registered, subject=participant_id)], meta)
    return participant_id
