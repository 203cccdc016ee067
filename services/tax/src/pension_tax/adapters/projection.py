"""Projections of the tax service's own events into its read models. Each is a pure function of
the events in order, so dropping the tables and replaying gives the same rows."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_shared.bulk_rebuild import Few, Load, SetBased
from pension_shared.envelope import Envelope, event_type
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


def _v1(name: str) -> str:
    return event_type("tax", name, 1)


class TaxpayerRegisteredProjection:
    name = "taxpayers"
    tables = (taxpayers,)
    # One registration per taxpayer: a few of the ledger's events, read from those gathered.
    set_based = SetBased(reads=frozenset({_v1(TAXPAYER_REGISTERED)}), steps=(Few(f"""
        INSERT INTO taxpayers (participant_id, id_number, name, registered_at)
        SELECT data_jsonb ->> 'participant_id', data_jsonb ->> 'id_number', data_jsonb ->> 'name', data_jsonb ->> 'registered_at'
        FROM events WHERE type = '{_v1(TAXPAYER_REGISTERED)}'
    """),))

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        insert_many(conn, taxpayers, [_columns(taxpayers, e.data) for e in batch if e.event_type.name == TAXPAYER_REGISTERED])


class HoldingBankProjection:
    """The bank holding each participant's current fund account."""

    name = "holding_banks"
    tables = (holding_banks,)
    # A fund account noted per opening or bank change: a few of the ledger's events.
    set_based = SetBased(reads=frozenset({_v1(FUND_ACCOUNT_NOTED)}), steps=(Few(f"""
        INSERT INTO holding_banks (participant_id, fund_account_id, bank_code, branch_city)
        SELECT DISTINCT ON (d.participant_id COLLATE "C") d.participant_id, d.fund_account_id, d.bank_code, d.branch_city
        FROM events e, jsonb_to_record(e.data_jsonb)
             AS d (participant_id text, fund_account_id text, bank_code text, branch_city text)
        WHERE e.type = '{_v1(FUND_ACCOUNT_NOTED)}'
        ORDER BY d.participant_id COLLATE "C", e.position DESC
    """),))

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
    # A voucher row per issuing, then voided by the last voiding of its number, when that comes
    # after its issue: the few voidings are read once the issuings are all loaded (a load by
    # event reads only its own events), from those the rebuild gathers. Each issuing's fields
    # are taken from its stored parse with operators, faster than jsonb_to_record.
    set_based = SetBased(reads=frozenset({_v1(DEDUCTION_VOUCHER_ISSUED), _v1(DEDUCTION_VOUCHER_VOIDED)}),
                         steps=(Load(vouchers, f"""
        SELECT d ->> 'voucher_no', e.position, d ->> 'participant_id', d ->> 'id_number', d ->> 'name',
               CAST(d ->> 'year' AS integer), CAST(d ->> 'amount' AS bigint), CAST(d ->> 'cumulative_amount' AS bigint),
               CAST(d ->> 'deductible_amount' AS bigint), d ->> 'issued_at', d ->> 'contribution_id',
               d ->> 'fund_account_id', d ->> 'verification_code', '{ISSUED}', NULL, NULL
        FROM (SELECT position, type, data_jsonb AS d FROM events) AS e
        WHERE e.type = '{_v1(DEDUCTION_VOUCHER_ISSUED)}'
    """, per_event=True),), after=(Few(f"""
        UPDATE vouchers SET status = '{VOIDED}', voided_at = v.voided_at, void_reason = v.reason
        FROM (
            SELECT DISTINCT ON (w.voucher_no COLLATE "C") w.voucher_no, x.position, w.voided_at, w.reason
            FROM events x, jsonb_to_record(x.data_jsonb) AS w (voucher_no text, voided_at text, reason text)
            WHERE x.type = '{_v1(DEDUCTION_VOUCHER_VOIDED)}'
            ORDER BY w.voucher_no COLLATE "C", x.position DESC
        ) v
        WHERE vouchers.voucher_no = v.voucher_no AND v.position > vouchers.position
    """),))

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
    # A withholding row per payout withheld, then reversed by the last reversal of its payout,
    # when that comes after it (read once, as the vouchers' voidings are).
    set_based = SetBased(
        reads=frozenset({_v1(WITHDRAWAL_TAX_WITHHELD), _v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED)}),
        steps=(Load(withholdings, f"""
        SELECT d ->> 'payout_id', e.position, d ->> 'participant_id', d ->> 'id_number', d ->> 'name',
               d ->> 'withdrawal_id', d ->> 'kind', CAST(d ->> 'gross' AS bigint), CAST(d ->> 'tax' AS bigint),
               CAST(d ->> 'net' AS bigint), CAST(d ->> 'expected_tax' AS bigint), CAST(d ->> 'discrepancy' AS boolean),
               d ->> 'withholding_city', d ->> 'bank_code', d ->> 'paid_at', CAST(d ->> 'year' AS integer),
               d ->> 'month', '{WITHHELD}', NULL
        FROM (SELECT position, type, data_jsonb AS d FROM events) AS e
        WHERE e.type = '{_v1(WITHDRAWAL_TAX_WITHHELD)}'
    """, per_event=True),), after=(Few(f"""
        UPDATE withholdings SET status = '{REVERSED}', reversed_at = r.reversed_at
        FROM (
            SELECT DISTINCT ON (w.payout_id COLLATE "C") w.payout_id, x.position, w.reversed_at
            FROM events x, jsonb_to_record(x.data_jsonb) AS w (payout_id text, reversed_at text)
            WHERE x.type = '{_v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED)}'
            ORDER BY w.payout_id COLLATE "C", x.position DESC
        ) r
        WHERE withholdings.payout_id = r.payout_id AND r.position > withholdings.position
    """),))

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
    # The year's figures from the rows just rebuilt (a voucher row per issuing, a withholding row
    # per payout withheld) and the few other events: contributed is the running total of the
    # last issuing or voiding, deductible the last voiding's total plus what was issued after it.
    # The vouchers and the withholdings are summed up per taxpayer and year first, so that only
    # those sums meet the few other events. What was issued up to a year's last voiding is taken
    # off again by a join of the vouchers with those voidings alone: no voiding, no read of the
    # vouchers for it (a left join of every voucher with them took a fifth of the statement).
    set_based = SetBased(
        reads=frozenset({_v1(DEDUCTION_VOUCHER_VOIDED), _v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED),
                         _v1(ANNUAL_TAX_STATEMENT_ISSUED)}),
        uses=(vouchers, withholdings),
        steps=(Few(f"""
        INSERT INTO tax_years (participant_id, year, contributed, deductible, withdrawn_gross, tax_withheld,
                               statement_issued_at)
        WITH stored AS (
            SELECT e.position, e.type, d.*
            FROM events e, jsonb_to_record(e.data_jsonb) AS d (
                participant_id text, year integer, cumulative_amount bigint, deductible_total bigint, gross bigint,
                tax bigint, issued_at text)
            WHERE e.type IN ('{_v1(DEDUCTION_VOUCHER_VOIDED)}', '{_v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED)}',
                             '{_v1(ANNUAL_TAX_STATEMENT_ISSUED)}')
        ), last_voided AS (
            SELECT DISTINCT ON (participant_id COLLATE "C", year) participant_id, year, position, deductible_total
            FROM stored WHERE type = '{_v1(DEDUCTION_VOUCHER_VOIDED)}'
            ORDER BY participant_id COLLATE "C", year, position DESC
        ), last_statement AS (
            SELECT DISTINCT ON (participant_id COLLATE "C", year) participant_id, year, issued_at
            FROM stored WHERE type = '{_v1(ANNUAL_TAX_STATEMENT_ISSUED)}'
            ORDER BY participant_id COLLATE "C", year, position DESC
        ), issued AS (
            SELECT participant_id, year, max(ARRAY[position, cumulative_amount]) AS last,
                   sum(deductible_amount) AS deductible
            FROM vouchers GROUP BY participant_id, year
        ), issued_before_void AS (
            SELECT i.participant_id, i.year, sum(i.deductible_amount) AS deductible
            FROM vouchers i JOIN last_voided v ON v.participant_id = i.participant_id AND v.year = i.year
                                                AND i.position <= v.position
            GROUP BY i.participant_id, i.year
        ), withheld AS (
            SELECT participant_id, year, sum(gross) AS gross, sum(tax) AS tax FROM withholdings GROUP BY participant_id, year
        ), changes (participant_id, year, last, deductible, gross, tax) AS (
            SELECT participant_id, year, last, deductible, 0, 0 FROM issued
            UNION ALL
            SELECT participant_id, year, NULL, -deductible, 0, 0 FROM issued_before_void
            UNION ALL
            SELECT participant_id, year, NULL, NULL, gross, tax FROM withheld
            UNION ALL
            SELECT participant_id, year,
                   CASE WHEN type = '{_v1(DEDUCTION_VOUCHER_VOIDED)}' AND cumulative_amount IS NOT NULL
                        THEN ARRAY[position, cumulative_amount] END, NULL,
                   CASE WHEN type = '{_v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED)}' THEN -gross ELSE 0 END,
                   CASE WHEN type = '{_v1(WITHDRAWAL_TAX_WITHHOLDING_REVERSED)}' THEN -tax ELSE 0 END
            FROM stored
        )
        SELECT c.participant_id, c.year, coalesce((max(c.last))[2], 0),
               coalesce(v.deductible_total, 0) + coalesce(sum(c.deductible), 0),
               sum(c.gross), sum(c.tax), s.issued_at
        FROM changes c
        LEFT JOIN last_voided v ON v.participant_id = c.participant_id AND v.year = c.year
        LEFT JOIN last_statement s ON s.participant_id = c.participant_id AND s.year = c.year
        GROUP BY c.participant_id, c.year, v.position, v.deductible_total, s.issued_at
    """),))

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
