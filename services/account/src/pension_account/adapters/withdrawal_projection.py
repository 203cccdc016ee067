"""Projection of withdrawal applications and the participant's life-cycle status."""

from __future__ import annotations

import orjson
from sqlalchemy.engine import Connection

from pension_account.adapters.tables import participants, withdrawal_applications
from pension_account.domain.withdrawal import (
    PARTICIPANT_DIED, PARTICIPANT_RECEIVING, WITHDRAWAL_APPLIED, WITHDRAWAL_APPROVED, WITHDRAWAL_MATERIALS_REQUESTED,
    WITHDRAWAL_REJECTED,
)
from pension_shared.envelope import Envelope

_DECIDED = {WITHDRAWAL_APPROVED: "approved", WITHDRAWAL_REJECTED: "rejected",
            WITHDRAWAL_MATERIALS_REQUESTED: "materials_requested"}


class WithdrawalsProjection:
    name = "withdrawal_applications"
    tables = (withdrawal_applications,)

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
