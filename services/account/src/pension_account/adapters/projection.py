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
from pension_shared.clock import business_year, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.projection_batch import FoldedRows, insert_many, update_many, upsert_many


RECORD_KINDS = {WITHDRAWAL_RECORDED: "withdrawal", DEDUCTION_RECORDED: "deduction", TAX_RECORDED: "tax"}


class ParticipantsProjection:
    name = "participants"
    tables = (participants, contribution_years, participant_records)

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
