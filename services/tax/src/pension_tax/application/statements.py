"""Closing the tax year: once the business clock has passed the end of a calendar year
(Asia/Shanghai), every taxpayer with activity in that year gets one annual statement.

The job is idempotent and catches up: it looks for years up to the last closed one whose
statement is not yet recorded, and the taxpayer's stream is the judge (a statement already on
the stream is not issued again; a concurrent writer turns into a conflict and a later retry)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pension_shared.clock import BusinessClock, business_year, rfc3339
from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import EventStore, Metadata
from pension_tax.adapters.tables import tax_years
from pension_tax.application.policies import load_taxpayer, record
from pension_tax.domain.taxpayer import TaxRules


@dataclass
class TaxYearClosing:
    engine: Engine
    store: EventStore
    clock: BusinessClock
    rules: TaxRules
    batch_size: int = 200
    name: str = "close-tax-year"

    def run_once(self) -> int:
        now = self.clock.now()
        last_closed_year = business_year(now) - 1
        with self.engine.connect() as conn:
            due = conn.execute(
                sa.select(tax_years.c.participant_id, tax_years.c.year)
                .where(tax_years.c.year <= last_closed_year, tax_years.c.statement_issued_at.is_(None))
                .order_by(tax_years.c.year, tax_years.c.participant_id)
                .limit(self.batch_size)
            ).all()
        issued = 0
        for participant_id, year in due:
            try:
                issued += self.close(participant_id, year, at=rfc3339(now))
            except ConcurrencyConflict:
                continue
        return issued

    def close(self, participant_id: str, year: int, *, at: str) -> int:
        with self.engine.begin() as conn:
            stream, taxpayer = load_taxpayer(conn, self.store, participant_id)
            return record(conn, self.store, stream, taxpayer, taxpayer.issue_statement(year, rules=self.rules, at=at),
                          Metadata(time=at))
