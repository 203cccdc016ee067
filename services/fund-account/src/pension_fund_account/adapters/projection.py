"""Projection of the fund-account service's own events into its read models."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pension_fund_account.adapters.tables import known_participants
from pension_fund_account.domain.participants import PARTICIPANT_RECOGNISED
from pension_shared.envelope import Envelope


class ParticipantRecognisedProjection:
    name = "known_participants"
    tables = (known_participants,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == PARTICIPANT_RECOGNISED:
            conn.execute(known_participants.insert().values(**{c.name: event.data[c.name] for c in known_participants.columns}))
