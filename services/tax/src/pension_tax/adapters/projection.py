"""Projection of the tax service's own events into its read models."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pension_tax.adapters.tables import taxpayers
from pension_tax.domain.participants import TAXPAYER_REGISTERED
from pension_shared.envelope import Envelope


class TaxpayerRegisteredProjection:
    name = "taxpayers"
    tables = (taxpayers,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == TAXPAYER_REGISTERED:
            conn.execute(taxpayers.insert().values(**{c.name: event.data[c.name] for c in taxpayers.columns}))
