"""Projection of the account service's own events into its read models."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pension_account.adapters.tables import contribution_years, participant_records, participants
from pension_account.domain.bank_change import BANK_CHANGE_COMPLETED
from pension_account.domain.participant import PARTICIPANT_REGISTERED
from pension_account.domain.records import (
    CONTRIBUTION_RECORDED, DEDUCTION_RECORDED, FUND_ACCOUNT_BOUND, INVESTMENT_RECORDED, TAX_RECORDED, WITHDRAWAL_RECORDED,
)
from pension_shared.clock import business_year, parse_rfc3339
from pension_shared.envelope import Envelope


RECORD_KINDS = {WITHDRAWAL_RECORDED: "withdrawal", DEDUCTION_RECORDED: "deduction", TAX_RECORDED: "tax"}


class ParticipantsProjection:
    name = "participants"
    tables = (participants, contribution_years, participant_records)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name = event.event_type.name
        if name == FUND_ACCOUNT_BOUND:
            conn.execute(participants.update().where(participants.c.participant_id == event.subject).values(
                fund_account_id=event.data["fund_account_id"], fund_account_bank_code=event.data["bank_code"],
            ))
        elif name == CONTRIBUTION_RECORDED:
            self._contribution(conn, event)
        elif name == INVESTMENT_RECORDED:
            self._record(conn, event, kind=event.data["kind"], year=event.data["year"])
        elif name in RECORD_KINDS:
            self._record(conn, event, kind=RECORD_KINDS[name], year=event.data["year"])
        elif name == BANK_CHANGE_COMPLETED:
            self._bank_change(conn, event)
        elif name == PARTICIPANT_REGISTERED:
            data = event.data
            conn.execute(participants.insert().values(
                participant_id=data["participant_id"],
                id_number_digest=data["id_number_digest"],
                id_number_masked=data["id_number_masked"],
                insurance_type=data["insurance_type"],
                insured_region=data["insured_region"],
                channel=data["channel"],
                ss_card_bank_code=data["ss_card_account"]["bank_code"],
                ss_card_account_masked=data["ss_card_account"]["account_number_masked"],
                status="active",
                registered_at=data["registered_at"],
                registered_by=data["registered_by"],
            ))

    def _contribution(self, conn: Connection, event: Envelope) -> None:
        data = event.data
        values = {"contributed": data["contributed_this_year"], "remaining_quota": data["remaining_quota"]}
        updated = conn.execute(
            contribution_years.update()
            .where(contribution_years.c.participant_id == event.subject, contribution_years.c.year == data["year"])
            .values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(contribution_years.insert().values(participant_id=event.subject, year=data["year"], **values))
        self._record(conn, event, kind="contribution", year=data["year"])

    def _bank_change(self, conn: Connection, event: Envelope) -> None:
        """The rebinding (A-CHG-4), and a record of the assets moved (at book value) to the new account."""
        data = event.data
        conn.execute(participants.update().where(participants.c.participant_id == event.subject).values(
            fund_account_id=data["new_fund_account_id"], fund_account_bank_code=data["new_bank_code"],
        ))
        year = business_year(parse_rfc3339(data["completed_at"]))
        self._record(conn, event, kind="bank_change", year=year, fund_account_id=data["new_fund_account_id"])

    def _record(
        self, conn: Connection, event: Envelope, *, kind: str, year: int, fund_account_id: str | None = None,
    ) -> None:
        data = event.data
        conn.execute(participant_records.insert().values(
            position=event.position, participant_id=event.subject, year=year, kind=kind, time=event.time,
            amount=data.get("amount"), fund_account_id=fund_account_id or data.get("fund_account_id"),
            product_code=data.get("product_code"), source_event_id=data["source_event"]["id"],
            source_event_type=data["source_event"]["type"],
        ))
