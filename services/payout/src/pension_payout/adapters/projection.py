"""Projection of the payout service's own events into its read models."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pension_payout.adapters.tables import payees
from pension_payout.domain.participants import PAYEE_REGISTERED
from pension_shared.envelope import Envelope


class PayeeRegisteredProjection:
    name = "payees"
    tables = (payees,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == PAYEE_REGISTERED:
            conn.execute(payees.insert().values(**{c.name: event.data[c.name] for c in payees.columns}))
