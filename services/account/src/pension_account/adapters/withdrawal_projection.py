"""Projection of withdrawal applications and the participant's life-cycle status."""

from __future__ import annotations

import orjson
from sqlalchemy.engine import Connection

from pension_account.adapters.tables import participants, withdrawal_applications
from pension_account.domain.withdrawal import (
    PARTICIPANT_DIED, PARTICIPANT_RECEIVING, WITHDRAWAL_APPLIED, WITHDRAWAL_APPROVED, WITHDRAWAL_MATERIALS_REQUESTED,
    WITHDRAWAL_REJECTED,
)
from pension_shared.bulk_rebuild import Few, SetBased
from pension_shared.envelope import Envelope, event_type

_DECIDED = {WITHDRAWAL_APPROVED: "approved", WITHDRAWAL_REJECTED: "rejected",
            WITHDRAWAL_MATERIALS_REQUESTED: "materials_requested"}


def _v1(name: str) -> str:
    return event_type("account", name, 1)


_APPLIED, _RECEIVING, _DIED = _v1(WITHDRAWAL_APPLIED), _v1(PARTICIPANT_RECEIVING), _v1(PARTICIPANT_DIED)
_DECISIONS = {_v1(name): status for name, status in _DECIDED.items()}


class WithdrawalsProjection:
    name = "withdrawal_applications"
    tables = (withdrawal_applications,)
    # An application has the last decision on it, when that comes after it; a participant's
    # status is that of its last receiving or death (both come after its registration, on its
    # stream, so they find its row). The data is parsed from its text, not read from data_jsonb:
    # an application's evidence is kept as the text the event has, which jsonb does not keep.
    set_based = SetBased(reads=frozenset({_APPLIED, _RECEIVING, _DIED, *_DECISIONS}), uses=(participants,), steps=(Few(f"""
        WITH stored AS (
            SELECT e.position, e.type, e.subject, d.*
            FROM events e, json_to_record(CAST(e.data AS json)) AS d (
                application_id text, participant_id text, condition text, evidence json, channel text,
                applied_at text, reason text, decided_at text, decided_by text)
            WHERE e.type IN ('{_APPLIED}', '{_RECEIVING}', '{_DIED}', {", ".join(f"'{t}'" for t in _DECISIONS)})
        ), decided AS (
            SELECT DISTINCT ON (application_id COLLATE "C") application_id, position, reason, decided_at, decided_by,
                   CASE type {" ".join(f"WHEN '{t}' THEN '{status}'" for t, status in _DECISIONS.items())} END AS status
            FROM stored WHERE type IN ({", ".join(f"'{t}'" for t in _DECISIONS)})
            ORDER BY application_id COLLATE "C", position DESC
        ), applications AS (
            INSERT INTO withdrawal_applications (application_id, participant_id, condition, status, evidence, channel,
                                                 reason, applied_at, decided_at, decided_by)
            SELECT a.application_id, a.participant_id, a.condition,
                   CASE WHEN d.position > a.position THEN d.status ELSE 'under_verification' END,
                   CAST(a.evidence AS text), a.channel,
                   CASE WHEN d.position > a.position THEN d.reason END, a.applied_at,
                   CASE WHEN d.position > a.position THEN d.decided_at END,
                   CASE WHEN d.position > a.position THEN d.decided_by END
            FROM stored a LEFT JOIN decided d ON d.application_id = a.application_id
            WHERE a.type = '{_APPLIED}'
        )
        UPDATE participants SET status = life.status
        FROM (
            SELECT DISTINCT ON (subject COLLATE "C") subject,
                   CASE WHEN type = '{_RECEIVING}' THEN 'receiving' ELSE 'deceased' END AS status
            FROM stored WHERE type IN ('{_RECEIVING}', '{_DIED}')
            ORDER BY subject COLLATE "C", position DESC
        ) life
        WHERE participants.participant_id = life.subject
    """),))

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == WITHDRAWAL_APPLIED:
            conn.execute(withdrawal_applications.insert().values(
                application_id=data["application_id"], participant_id=data["participant_id"],
                condition=data["condition"], status="under_verification", evidence=orjson.dumps(data["evidence"]).decode(),
                channel=data["channel"], applied_at=data["applied_at"],
            ))
        elif name in _DECIDED:
            conn.execute(withdrawal_applications.update()
                         .where(withdrawal_applications.c.application_id == data["application_id"])
                         .values(status=_DECIDED[name], reason=data["reason"], decided_at=data["decided_at"],
                                 decided_by=data["decided_by"]))
        elif name == PARTICIPANT_RECEIVING:
            conn.execute(participants.update().where(participants.c.participant_id == event.subject).values(status="receiving"))
        elif name == PARTICIPANT_DIED:
            conn.execute(participants.update().where(participants.c.participant_id == event.subject).values(status="deceased"))
