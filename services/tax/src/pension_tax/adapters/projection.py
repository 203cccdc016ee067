"""Projections of the tax service's own events into its read models. Each is a pure function of
the events in order, so dropping the tables and replaying gives the same rows."""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.envelope import Envelope
from pension_tax.adapters.tables import holding_banks, tax_years, taxpayers, vouchers, withholdings
from pension_tax.domain.events import (
    ANNUAL_TAX_STATEMENT_ISSUED, DEDUCTION_VOUCHER_ISSUED, DEDUCTION_VOUCHER_VOIDED, FUND_ACCOUNT_NOTED,
    TAXPAYER_REGISTERED, WITHDRAWAL_TAX_WITHHELD, WITHDRAWAL_TAX_WITHHOLDING_REVERSED,
)

ISSUED, VOIDED = "issued", "voided"
WITHHELD, REVERSED = "withheld", "reversed"


def _columns(table: sa.Table, data: Mapping[str, Any]) -> dict[str, Any]:
    return {c.name: data[c.name] for c in table.columns if c.name in data}


class TaxpayerRegisteredProjection:
    name = "taxpayers"
    tables = (taxpayers,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == TAXPAYER_REGISTERED:
            conn.execute(taxpayers.insert().values(**_columns(taxpayers, event.data)))


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


class VouchersProjection:
    name = "vouchers"
    tables = (vouchers,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == DEDUCTION_VOUCHER_ISSUED:
            conn.execute(vouchers.insert().values(**_columns(vouchers, data), position=event.position, status=ISSUED))
        elif name == DEDUCTION_VOUCHER_VOIDED:
            conn.execute(vouchers.update().where(vouchers.c.voucher_no == data["voucher_no"]).values(
                status=VOIDED, voided_at=data["voided_at"], void_reason=data["reason"],
            ))


class WithholdingsProjection:
    """The itemised withholding return (A-TAX-12), one row per payout."""

    name = "withholdings"
    tables = (withholdings,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == WITHDRAWAL_TAX_WITHHELD:
            conn.execute(withholdings.insert().values(
                **_columns(withholdings, data), position=event.position, status=WITHHELD,
            ))
        elif name == WITHDRAWAL_TAX_WITHHOLDING_REVERSED:
            conn.execute(withholdings.update().where(withholdings.c.payout_id == data["payout_id"]).values(
                status=REVERSED, reversed_at=data["reversed_at"],
            ))


class TaxYearsProjection:
    """Each taxpayer's figures per calendar year, and whether the year's statement was issued."""

    name = "tax_years"
    tables = (tax_years,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == DEDUCTION_VOUCHER_ISSUED:
            self._change(conn, data, contributed=("set", data["cumulative_amount"]),
                         deductible=("add", data["deductible_amount"]))
        elif name == DEDUCTION_VOUCHER_VOIDED:
            self._change(conn, data, contributed=("set", data["cumulative_amount"]),
                         deductible=("set", data["deductible_total"]))
        elif name == WITHDRAWAL_TAX_WITHHELD:
            self._change(conn, data, withdrawn_gross=("add", data["gross"]), tax_withheld=("add", data["tax"]))
        elif name == WITHDRAWAL_TAX_WITHHOLDING_REVERSED:
            self._change(conn, data, withdrawn_gross=("add", -data["gross"]), tax_withheld=("add", -data["tax"]))
        elif name == ANNUAL_TAX_STATEMENT_ISSUED:
            self._change(conn, data, statement_issued_at=("set", data["issued_at"]))

    @staticmethod
    def _change(conn: Connection, data: Mapping[str, Any], **changes: tuple[str, Any]) -> None:
        key = (tax_years.c.participant_id == data["participant_id"]) & (tax_years.c.year == data["year"])
        row = conn.execute(sa.select(tax_years).where(key)).one_or_none()
        current: dict[str, Any] = dict(row._mapping) if row is not None else {
            "participant_id": data["participant_id"], "year": data["year"], "contributed": 0, "deductible": 0,
            "withdrawn_gross": 0, "tax_withheld": 0, "statement_issued_at": None,
        }
        for column, (how, value) in changes.items():
            current[column] = current[column] + value if how == "add" else value
        if row is None:
            conn.execute(tax_years.insert().values(**current))
        else:
            conn.execute(tax_years.update().where(key).values(**current))


def projections() -> list:
    return [
        TaxpayerRegisteredProjection(), HoldingBankProjection(), VouchersProjection(), WithholdingsProjection(),
        TaxYearsProjection(),
    ]
