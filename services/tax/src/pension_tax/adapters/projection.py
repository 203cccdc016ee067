"""Projections of the tax service's own events into its read models. Each is a pure function of
the events in order, so dropping the tables and replaying gives the same rows."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import Envelope
from pension_shared.projection_batch import FoldedRows, existing_rows, insert_many, update_many, upsert_many
from pension_tax.adapters.tables import holding_banks, tax_years, taxpayers, vouchers, withholdings
from pension_tax.domain.events import (
    ANNUAL_TAX_STATEMENT_ISSUED, DEDUCTION_VOUCHER_ISSUED, DEDUCTION_VOUCHER_VOIDED, FUND_ACCOUNT_NOTED,
    TAXPAYER_REGISTERED, WITHDRAWAL_TAX_WITHHELD, WITHDRAWAL_TAX_WITHHOLDING_REVERSED,
)

ISSUED, VOIDED = "issued", "voided"
WITHHELD, REVERSED = "withheld", "reversed"


def _columns(table: sa.Table, data: Mapping[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in _names(table) if name in data}


@functools.cache
def _names(table: sa.Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns)


class TaxpayerRegisteredProjection:
    name = "taxpayers"
    tables = (taxpayers,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        insert_many(conn, taxpayers, [_columns(taxpayers, e.data) for e in batch if e.event_type.name == TAXPAYER_REGISTERED])


class HoldingBankProjection:
    """The bank holding each participant's current fund account."""

    name = "holding_banks"
    tables = (holding_banks,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name != FUND_ACCOUNT_NOTED:
            return
        row = _columns(holding_banks, event.data)
        key = holding_banks.c.participant_id == row["participant_id"]
        if conn.execute(holding_banks.update().where(key).values(**row)).rowcount == 0:
            conn.execute(holding_banks.insert().values(**row))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Each participant's holding bank is the last one noted."""
        last: dict[str, dict[str, Any]] = {}
        for event in batch:
            if event.event_type.name == FUND_ACCOUNT_NOTED:
                row = _columns(holding_banks, event.data)
                last.setdefault(row["participant_id"], {}).update(row)
        upsert_many(conn, holding_banks, list(last.values()))


class VouchersProjection:
    name = "vouchers"
    tables = (vouchers,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Vouchers issued in the batch are inserted with any later voiding folded in."""
        _inserted_then_changed(
            conn, vouchers, batch,
            DEDUCTION_VOUCHER_ISSUED, lambda e: {**_columns(vouchers, e.data), "position": e.position, "status": ISSUED},
            DEDUCTION_VOUCHER_VOIDED, lambda data: {"voucher_no": data["voucher_no"], "status": VOIDED,
                                                    "voided_at": data["voided_at"], "void_reason": data["reason"]},
        )


class WithholdingsProjection:
    """The itemised withholding return (A-TAX-12), one row per payout."""

    name = "withholdings"
    tables = (withholdings,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Payouts withheld in the batch are inserted with any later reversal folded in."""
        _inserted_then_changed(
            conn, withholdings, batch,
            WITHDRAWAL_TAX_WITHHELD, lambda e: {**_columns(withholdings, e.data), "position": e.position, "status": WITHHELD},
            WITHDRAWAL_TAX_WITHHOLDING_REVERSED, lambda data: {"payout_id": data["payout_id"], "status": REVERSED,
                                                               "reversed_at": data["reversed_at"]},
        )


def _inserted_then_changed(
    conn: Connection, table: sa.Table, batch: Sequence[Envelope],
    inserting: str, row_of: Callable[[Envelope], dict[str, Any]],
    changing: str, change_of: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> None:
    """A row per ``inserting`` event, changed by each later ``changing`` event of the same key."""
    rows = FoldedRows(table)
    for event in batch:
        name = event.event_type.name
        if name == inserting:
            rows.insert(row_of(event))
        elif name == changing:
            rows.update(change_of(event.data))
    rows.write(conn)


class TaxYearsProjection:
    """Each taxpayer's figures per calendar year, and whether the year's statement was issued."""

    name = "tax_years"
    tables = (tax_years,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """The rows the batch touches are read at once, changed in memory in event order, and
        written once."""
        changes = [(event.data, change) for event in batch if (change := self._changes(event))]
        if not changes:
            return
        stored = existing_rows(conn, tax_years, ((data["participant_id"], data["year"]) for data, _ in changes))
        touched: dict[tuple[str, int], dict[str, Any]] = {}
        for data, change in changes:
            key = (data["participant_id"], data["year"])
            current = touched.get(key) or stored.get(key) or {
                "participant_id": data["participant_id"], "year": data["year"], "contributed": 0, "deductible": 0,
                "withdrawn_gross": 0, "tax_withheld": 0, "statement_issued_at": None,
            }
            for column, (how, value) in change.items():
                current[column] = current[column] + value if how == "add" else value
            touched[key] = current
        insert_many(conn, tax_years, [row for key, row in touched.items() if key not in stored])
        update_many(conn, tax_years, [row for key, row in touched.items() if key in stored])

    @staticmethod
    def _changes(event: Envelope) -> dict[str, tuple[str, Any]]:
        name, data = event.event_type.name, event.data
        if name == DEDUCTION_VOUCHER_ISSUED:
            return {"contributed": ("set", data["cumulative_amount"]), "deductible": ("add", data["deductible_amount"])}
        if name == DEDUCTION_VOUCHER_VOIDED:
            return {"contributed": ("set", data["cumulative_amount"]), "deductible": ("set", data["deductible_total"])}
        if name == WITHDRAWAL_TAX_WITHHELD:
            return {"withdrawn_gross": ("add", data["gross"]), "tax_withheld": ("add", data["tax"])}
        if name == WITHDRAWAL_TAX_WITHHOLDING_REVERSED:
            return {"withdrawn_gross": ("add", -data["gross"]), "tax_withheld": ("add", -data["tax"])}
        if name == ANNUAL_TAX_STATEMENT_ISSUED:
            return {"statement_issued_at": ("set", data["issued_at"])}
        return {}


def projections() -> list:
    return [
        TaxpayerRegisteredProjection(), HoldingBankProjection(), VouchersProjection(), WithholdingsProjection(),
        TaxYearsProjection(),
    ]
