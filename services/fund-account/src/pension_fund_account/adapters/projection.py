"""Projections of the fund-account service's own events into its read models. Each is a pure
function of the events in order, so dropping the tables and replaying gives the same rows."""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_fund_account.adapters.tables import (
    bank_changes, fund_accounts, holdings, known_participants, participant_quota, products,
)
from pension_fund_account.domain.events import (
    BANK_CHANGE_ABORTED, BANK_CHANGE_COMPLETED, BANK_CHANGE_REQUESTED, CASH_TRANSFERRED_OUT,
    CONTRIBUTION_QUOTA_REGISTERED, CONTRIBUTION_RECEIVED, FUND_ACCOUNT_CLOSED, FUND_ACCOUNT_FROZEN, FUND_ACCOUNT_OPENED,
    FUND_ACCOUNT_UNFROZEN, HOLDING_TRANSFERRED_IN, HOLDING_TRANSFERRED_OUT, INCOME_CREDITED, PARTICIPANT_RECOGNISED,
    FUND_ACCOUNT_RECEIVING, PAYOUT_DEBITED, PAYOUT_REFUNDED, PRODUCT_LISTED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, TRANSFER_IN_RECEIVED,
)
from pension_fund_account.domain.fund_account import ACTIVE, CLOSED, FROZEN, RECEIVING
from pension_fund_account.domain.participant_funds import ABORTED, COMPLETED, REQUESTED
from pension_shared.envelope import Envelope


class ParticipantRecognisedProjection:
    name = "known_participants"
    tables = (known_participants,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == PARTICIPANT_RECOGNISED:
            conn.execute(known_participants.insert().values(**{c.name: event.data[c.name] for c in known_participants.columns}))


class FundAccountsProjection:
    name = "fund_accounts"
    tables = (fund_accounts, holdings)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == FUND_ACCOUNT_OPENED:
            conn.execute(fund_accounts.insert().values(
                fund_account_id=data["fund_account_id"], participant_id=data["participant_id"],
                bank_code=data["bank_code"], branch_city=data["branch_city"], status=ACTIVE, cash=0,
                opened_at=data["opened_at"], version=event.sequence,
            ))
            return
        if name not in STATUS_AFTER and name not in MOVES_MONEY:
            return
        account = fund_accounts.c.fund_account_id == data["fund_account_id"]
        if name in STATUS_AFTER:
            status = data.get("status_after", STATUS_AFTER[name]) if name == FUND_ACCOUNT_UNFROZEN else STATUS_AFTER[name]
            conn.execute(fund_accounts.update().where(account).values(status=status, version=event.sequence))
            return
        conn.execute(fund_accounts.update().where(account).values(cash=data["cash_after"], version=event.sequence))
        if name == PRODUCT_PURCHASED:
            _move_holding(conn, data, units=data["units"], cost=data["amount"])
        elif name == PRODUCT_REDEEMED:
            _move_holding(conn, data, units=-data["units"], cost=-data["cost_released"])
        elif name == HOLDING_TRANSFERRED_IN:
            _move_holding(conn, data, units=data["units"], cost=data["cost"])
        elif name == HOLDING_TRANSFERRED_OUT:
            _move_holding(conn, data, units=-data["units"], cost=-data["cost"])


STATUS_AFTER = {FUND_ACCOUNT_FROZEN: FROZEN, FUND_ACCOUNT_UNFROZEN: ACTIVE, FUND_ACCOUNT_CLOSED: CLOSED,
                FUND_ACCOUNT_RECEIVING: RECEIVING}
MOVES_MONEY = (
    CONTRIBUTION_RECEIVED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, INCOME_CREDITED, CASH_TRANSFERRED_OUT,
    TRANSFER_IN_RECEIVED, HOLDING_TRANSFERRED_OUT, HOLDING_TRANSFERRED_IN, PAYOUT_DEBITED, PAYOUT_REFUNDED,
)


def _move_holding(conn: Connection, data: Mapping[str, Any], *, units: int, cost: int) -> None:
    key = (holdings.c.fund_account_id == data["fund_account_id"]) & (holdings.c.product_code == data["product_code"])
    row = conn.execute(sa.select(holdings.c.units, holdings.c.cost).where(key)).one_or_none()
    if row is None:
        conn.execute(holdings.insert().values(
            fund_account_id=data["fund_account_id"], product_code=data["product_code"], units=units, cost=cost,
        ))
    elif row.units + units == 0:
        conn.execute(holdings.delete().where(key))
    else:
        conn.execute(holdings.update().where(key).values(units=row.units + units, cost=row.cost + cost))


class ProductsProjection:
    name = "products"
    tables = (products,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name == PRODUCT_LISTED:
            data = event.data
            conn.execute(products.insert().values(
                product_code=data["product_code"], name=data["name"], product_type=data["product_type"],
                eligible_from=data["eligible_from"], listed_at=data["listed_at"],
            ))


class ContributionQuotaProjection:
    """The yearly quota registry per participant, across every bank."""

    name = "participant_quota"
    tables = (participant_quota,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        if event.event_type.name != CONTRIBUTION_QUOTA_REGISTERED:
            return
        data = event.data
        key = (participant_quota.c.participant_id == data["participant_id"]) & (participant_quota.c.year == data["year"])
        updated = conn.execute(participant_quota.update().where(key).values(contributed=data["contributed_this_year"]))
        if updated.rowcount == 0:
            conn.execute(participant_quota.insert().values(
                participant_id=data["participant_id"], year=data["year"], contributed=data["contributed_this_year"],
            ))


class BankChangesProjection:
    """Each bank change's progress, for the banks involved and operators."""

    name = "bank_changes"
    tables = (bank_changes,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        name, data = event.event_type.name, event.data
        if name == BANK_CHANGE_REQUESTED:
            conn.execute(bank_changes.insert().values(
                **{k: data[k] for k in ("bank_change_id", "participant_id", "old_fund_account_id", "old_bank_code",
                                        "new_bank_code", "new_branch_city", "requested_at")},
                status=REQUESTED, updated_at=event.time,
            ))
            return
        change = bank_changes.c.bank_change_id == data.get("bank_change_id")
        if name == BANK_CHANGE_COMPLETED:
            conn.execute(bank_changes.update().where(change).values(
                status=COMPLETED, new_fund_account_id=data["new_fund_account_id"], updated_at=event.time,
            ))
        elif name == BANK_CHANGE_ABORTED:
            conn.execute(bank_changes.update().where(change).values(
                status=ABORTED, reason=data["reason"][:256], updated_at=event.time,
            ))


def projections() -> list:
    return [
        ParticipantRecognisedProjection(), FundAccountsProjection(), ProductsProjection(), ContributionQuotaProjection(),
        BankChangesProjection(),
    ]
