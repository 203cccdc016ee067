"""Projection of the account service's own events into its read models."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pension_account.adapters.tables import participants
from pension_account.domain.participant import PARTICIPANT_REGISTERED
from pension_shared.envelope import Envelope


class ParticipantsProjection:
    name = "participants"
    tables = (participants,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == PARTICIPANT_REGISTERED:
            data = event.data
            conn.execute(participants.insert().values(
                participant_id=data["participant_id"],
                id_number_digest=data["id_number_digest"],
                id_number_masked=data["id_number_masked"],
                insurance_type=data["insurance_type"],
                insured_region=data["insured_region"],
                channel=data["channel"],
                ss_card_bank_code=data["ss_card_account"]["bank_code"],
                ss_card_account_masked=data["ss_card_account"]["account_number_masked"],
                status="active",
                registered_at=data["registered_at"],
                registered_by=data["registered_by"],
            ))
