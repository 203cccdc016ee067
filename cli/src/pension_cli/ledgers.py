"""Reading the services' ledgers as an operator: every event of each service's own store, in
the order it was recorded, optionally only up to a business date."""

from __future__ import annotations

from datetime import date
from typing import Sequence

import sqlalchemy as sa

from pension_cli.deployment import Deployment, ServiceLedger
from pension_cli.output import progress
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.schema import events
from pension_shared.verification import verify_ledger


def business_day_of(envelope: Envelope) -> date:
    return business_date(parse_rfc3339(envelope.time))


def read_ledgers(deployment: Deployment, services: Sequence[str], *, as_of: date | None = None) -> dict[str, list[Envelope]]:
    """Each service's events (upcast), those recorded on or before ``as_of`` when given."""
    read: dict[str, list[Envelope]] = {}
    with progress() as bars:
        for ledger in deployment.ledgers(services):
            store = ledger.store
            with ledger.engine.connect() as conn:
                total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
                task = bars.add_task(f"reading {ledger.name}", total=total)
                kept = []
                for envelope in store.read_all(conn):
                    bars.advance(task)
                    if as_of is None or business_day_of(envelope) <= as_of:
                        kept.append(envelope)
            ledger.engine.dispose()
            read[ledger.name] = kept
    return read


def named(envelope: Envelope) -> str:
    return envelope.event_type.name


def verification(ledger: ServiceLedger) -> dict:
    """``ledger verify``'s finding for one service: streams and events checked, and the first
    break exactly (stream, sequence, position, event id, reason)."""
    with ledger.engine.connect() as conn:
        report = verify_ledger(conn)
    ledger.engine.dispose()
    first = report.first_break
    return {
        "service": ledger.name, "intact": report.intact, "streams": report.streams,
        "events": report.events, "breaks": len(report.breaks),
        "first_break": first and {
            "stream": first.stream_id, "sequence": first.sequence, "position": first.position,
            "event_id": first.event_id, "reason": first.reason,
        },
    }
