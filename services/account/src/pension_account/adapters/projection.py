"""Projection of the account service's own events into its read models."""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_account.adapters.tables import contribution_years, participant_records, participants
from pension_account.domain.bank_change import BANK_CHANGE_COMPLETED
from pension_account.domain.participant import PARTICIPANT_REGISTERED
from pension_account.domain.records import (
    CONTRIBUTION_RECORDED, DEDUCTION_RECORDED, FUND_ACCOUNT_BOUND, INVESTMENT_RECORDED, TAX_RECORDED, WITHDRAWAL_RECORDED,
)
from pension_shared.bulk_rebuild import Load, SetBased
from pension_shared.clock import business_year, parse_rfc3339
from pension_shared.envelope import Envelope, event_type
from pension_shared.projection_batch import FoldedRows, insert_many, update_many, upsert_many


RECORD_KINDS = {WITHDRAWAL_RECORDED: "withdrawal", DEDUCTION_RECORDED: "deduction", TAX_RECORDED: "tax"}


def _v1(name: str) -> str:
    return event_type("account", name, 1)


_REGISTERED, _BOUND, _CHANGED = _v1(PARTICIPANT_REGISTERED), _v1(FUND_ACCOUNT_BOUND), _v1(BANK_CHANGE_COMPLETED)
_CONTRIBUTION, _INVESTMENT = _v1(CONTRIBUTION_RECORDED), _v1(INVESTMENT_RECORDED)
_RECORDS = {_CONTRIBUTION: "'contribution'", _INVESTMENT: "d ->> 'kind'", _CHANGED: "'bank_change'",
            **{_v1(name): f"'{kind}'" for name, kind in RECORD_KINDS.items()}}


class ParticipantsProjection:
    name = "participants"
    tables = (participants, contribution_years, participant_records)
    # A participant's fund account is the last one bound to it (by an account opened, or a bank
    # change completed) after its registration; a record per recorded event; each year's
    # figures those of its last contribution, found among the records just loaded (a record of
    # kind 'contribution' is one of a contribution recorded), so that only that one is read again.
    # Each record's fields are taken from its stored parse (data_jsonb) with operators: faster than
    # jsonb_to_record, which converts each field of the record.
    set_based = SetBased(reads=frozenset({_REGISTERED, _BOUND, *_RECORDS}), steps=(Load(participants, f"""
        WITH stored AS (
            SELECT position, type, subject, data_jsonb AS d
            FROM events WHERE type IN ('{_REGISTERED}', '{_BOUND}', '{_CHANGED}')
        ), bound AS (
            SELECT DISTINCT ON (subject COLLATE "C") subject, position,
                   CASE WHEN type = '{_BOUND}' THEN d ->> 'fund_account_id' ELSE d ->> 'new_fund_account_id' END
                       AS fund_account_id,
                   CASE WHEN type = '{_BOUND}' THEN d ->> 'bank_code' ELSE d ->> 'new_bank_code' END AS bank_code
            FROM stored WHERE type IN ('{_BOUND}', '{_CHANGED}')
            ORDER BY subject COLLATE "C", position DESC
        )
        SELECT r.d ->> 'participant_id', r.d ->> 'id_number_digest', r.d ->> 'id_number_masked',
               r.d ->> 'insurance_type', r.d ->> 'insured_region', r.d ->> 'channel',
               r.d -> 'ss_card_account' ->> 'bank_code', r.d -> 'ss_card_account' ->> 'account_number_masked', 'active',
               r.d ->> 'registered_at', r.d ->> 'registered_by',
               CASE WHEN b.position > r.position THEN b.fund_account_id END,
               CASE WHEN b.position > r.position THEN b.bank_code END
        FROM stored r LEFT JOIN bound b ON b.subject = r.d ->> 'participant_id'
        WHERE r.type = '{_REGISTERED}'
    """), Load(participant_records, f"""
        SELECT e.position, e.subject,
               CASE WHEN e.type = '{_CHANGED}' THEN CAST(extract(year FROM CAST(d ->> 'completed_at' AS timestamptz)
                                                                AT TIME ZONE 'Asia/Shanghai') AS integer)
                    ELSE CAST(d ->> 'year' AS integer) END,
               CASE e.type {" ".join(f"WHEN '{t}' THEN {kind}" for t, kind in _RECORDS.items())} END,
               e.time, CAST(d ->> 'amount' AS bigint),
               CASE WHEN e.type = '{_CHANGED}' THEN coalesce(nullif(d ->> 'new_fund_account_id', ''), d ->> 'fund_account_id')
                    ELSE d ->> 'fund_account_id' END,
               d ->> 'product_code', d #>> '{{source_event,id}}', d #>> '{{source_event,type}}'
        FROM (SELECT position, subject, type, time, data_jsonb AS d FROM events) AS e
        WHERE e.type IN ({", ".join(f"'{t}'" for t in _RECORDS)})
    """, per_event=True)), after=(f"""
        INSERT INTO contribution_years (participant_id, year, contributed, remaining_quota)
        SELECT r.participant_id, r.year, d.contributed_this_year, d.remaining_quota
        FROM (
            SELECT participant_id, year, max(position) AS position
            FROM participant_records WHERE kind = 'contribution'
            GROUP BY participant_id, year
        ) AS r
        JOIN events e ON e.position = r.position AND e.type = '{_CONTRIBUTION}'
        CROSS JOIN LATERAL jsonb_to_record(e.data_jsonb) AS d (contributed_this_year bigint, remaining_quota bigint)
    """,))

    def apply(self, conn: Connection, event: Envelope) -> None:
        for how, table, row in self._writes(event):
            if how == "insert":
                insert_many(conn, table, [row])
            elif how == "update":
                update_many(conn, participants, [row])
            else:
                upsert_many(conn, contribution_years, [row])

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Each participant's row and each year's totals written once; records inserted together."""
        people, records = FoldedRows(participants), FoldedRows(participant_records)
        years: dict[tuple[str, int], dict] = {}
        for event in batch:
            for how, table, row in self._writes(event):
                if table is contribution_years:
                    years[(row["participant_id"], row["year"])] = row
                elif table is participants:
                    people.insert(row) if how == "insert" else people.update(row)
                else:
                    records.insert(row)
        people.write(conn)
        upsert_many(conn, contribution_years, list(years.values()))
        records.write(conn)

    def _writes(self, event: Envelope) -> list[tuple[str, sa.Table, dict]]:
        """What the event changes: ("insert" | "update" | "upsert", table, row with its key)."""
        name, data = event.event_type.name, event.data
        if name == FUND_ACCOUNT_BOUND:
            return [("update", participants, {"participant_id": event.subject, "fund_account_id": data["fund_account_id"],
                                              "fund_account_bank_code": data["bank_code"]})]
        if name == CONTRIBUTION_RECORDED:
            return [
                ("upsert", contribution_years, {"participant_id": event.subject, "year": data["year"],
                                                "contributed": data["contributed_this_year"],
                                                "remaining_quota": data["remaining_quota"]}),
                ("insert", participant_records, self._record(event, kind="contribution", year=data["year"])),
            ]
        if name == INVESTMENT_RECORDED:
            return [("insert", participant_records, self._record(event, kind=data["kind"], year=data["year"]))]
        if name in RECORD_KINDS:
            return [("insert", participant_records, self._record(event, kind=RECORD_KINDS[name], year=data["year"]))]
        if name == BANK_CHANGE_COMPLETED:
            # The rebinding (A-CHG-4), and a record of the assets moved (at book value) to the new account.
            year = business_year(parse_rfc3339(data["completed_at"]))
            return [
                ("update", participants, {"participant_id": event.subject, "fund_account_id": data["new_fund_account_id"],
                                          "fund_account_bank_code": data["new_bank_code"]}),
                ("insert", participant_records, self._record(event, kind="bank_change", year=year,
                                                             fund_account_id=data["new_fund_account_id"])),
            ]
        if name == PARTICIPANT_REGISTERED:
            return [("insert", participants, {
                "participant_id": data["participant_id"],
                "id_number_digest": data["id_number_digest"],
                "id_number_masked": data["id_number_masked"],
                "insurance_type": data["insurance_type"],
                "insured_region": data["insured_region"],
                "channel": data["channel"],
                "ss_card_bank_code": data["ss_card_account"]["bank_code"],
                "ss_card_account_masked": data["ss_card_account"]["account_number_masked"],
                "status": "active",
                "registered_at": data["registered_at"],
                "registered_by": data["registered_by"],
            })]
        return []

    @staticmethod
    def _record(event: Envelope, *, kind: str, year: int, fund_account_id: str | None = None) -> dict:
        data = event.data
        return {
            "position": event.position, "participant_id": event.subject, "year": year, "kind": kind, "time": event.time,
            "amount": data.get("amount"), "fund_account_id": fund_account_id or data.get("fund_account_id"),
            "product_code": data.get("product_code"), "source_event_id": data["source_event"]["id"],
            "source_event_type": data["source_event"]["type"],
        }
