"""Projections of the fund-account service's own events into its read models. Each is a pure
function of the events in order, so dropping the tables and replaying gives the same rows."""

from __future__ import annotations

from typing import Any, Sequence

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
from pension_shared.projection_batch import (
    FoldedRows, delete_many, existing_rows, insert_many, update_many, upsert_many,
)


class ParticipantRecognisedProjection:
    name = "known_participants"
    tables = (known_participants,)

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        insert_many(conn, known_participants, [
            {c.name: e.data[c.name] for c in known_participants.columns}
            for e in batch if e.event_type.name == PARTICIPANT_RECOGNISED
        ])


class FundAccountsProjection:
    name = "fund_accounts"
    tables = (fund_accounts, holdings)

    def apply(self, conn: Connection, event: Envelope) -> None:
        change = _account_change(event)
        if change is None:
            return
        opened, row = change
        (insert_many if opened else update_many)(conn, fund_accounts, [row])
        _move_holdings(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Each account's row written once: the rows opened in this batch inserted with every
        later change folded in, the others updated with their last values."""
        rows = FoldedRows(fund_accounts)
        for event in batch:
            change = _account_change(event)
            if change is None:
                continue
            opened, row = change
            rows.insert(row) if opened else rows.update(row)
        rows.write(conn)
        _move_holdings(conn, batch)


def _account_change(event: Envelope) -> tuple[bool, dict[str, Any]] | None:
    """(opened?, the account row's new values) after the event, or None if it changes nothing."""
    name, data = event.event_type.name, event.data
    if name == FUND_ACCOUNT_OPENED:
        return True, {
            "fund_account_id": data["fund_account_id"], "participant_id": data["participant_id"],
            "bank_code": data["bank_code"], "branch_city": data["branch_city"], "status": ACTIVE, "cash": 0,
            "opened_at": data["opened_at"], "version": event.sequence,
        }
    if name in STATUS_AFTER:
        status = data.get("status_after", STATUS_AFTER[name]) if name == FUND_ACCOUNT_UNFROZEN else STATUS_AFTER[name]
        return False, {"fund_account_id": data["fund_account_id"], "status": status, "version": event.sequence}
    if name in MOVES_MONEY:
        return False, {"fund_account_id": data["fund_account_id"], "cash": data["cash_after"], "version": event.sequence}
    return None


def _move_holdings(conn: Connection, batch: Sequence[Envelope]) -> None:
    """The holdings the events move, each read once and written once with its moves applied in order."""
    moves = [move for event in batch if (move := _holding_move(event))]
    if not moves:
        return
    stored = {key: (row["units"], row["cost"])
              for key, row in existing_rows(conn, holdings, (key for key, _, _ in moves)).items()}
    held: dict[tuple[str, str], tuple[int, int] | None] = {}
    for key, units, cost in moves:
        held[key] = _after_move(held[key] if key in held else stored.get(key), units, cost)
    rows = {key: {"fund_account_id": key[0], "product_code": key[1], "units": now[0], "cost": now[1]}
            for key, now in held.items() if now is not None}
    delete_many(conn, holdings, [key for key, now in held.items() if now is None and key in stored])
    update_many(conn, holdings, [row for key, row in rows.items() if key in stored and held[key] != stored[key]])
    insert_many(conn, holdings, [row for key, row in rows.items() if key not in stored])


def _holding_move(event: Envelope) -> tuple[tuple[str, str], int, int] | None:
    """((fund account, product), units, cost) the event adds to a holding (negative: takes away)."""
    name, data = event.event_type.name, event.data
    if name == PRODUCT_PURCHASED:
        units, cost = data["units"], data["amount"]
    elif name == PRODUCT_REDEEMED:
        units, cost = -data["units"], -data["cost_released"]
    elif name == HOLDING_TRANSFERRED_IN:
        units, cost = data["units"], data["cost"]
    elif name == HOLDING_TRANSFERRED_OUT:
        units, cost = -data["units"], -data["cost"]
    else:
        return None
    return (data["fund_account_id"], data["product_code"]), units, cost


def _after_move(held: tuple[int, int] | None, units: int, cost: int) -> tuple[int, int] | None:
    """(units, cost) of a holding after a move: opened by the first, gone when no unit is left."""
    if held is None:
        return units, cost
    if held[0] + units == 0:
        return None
    return held[0] + units, held[1] + cost


STATUS_AFTER = {FUND_ACCOUNT_FROZEN: FROZEN, FUND_ACCOUNT_UNFROZEN: ACTIVE, FUND_ACCOUNT_CLOSED: CLOSED,
                FUND_ACCOUNT_RECEIVING: RECEIVING}
MOVES_MONEY = (
    CONTRIBUTION_RECEIVED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, INCOME_CREDITED, CASH_TRANSFERRED_OUT,
    TRANSFER_IN_RECEIVED, HOLDING_TRANSFERRED_OUT, HOLDING_TRANSFERRED_IN, PAYOUT_DEBITED, PAYOUT_REFUNDED,
)


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
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """The registry holds each year's running total: the last one of the batch wins."""
        last: dict[tuple[str, int], dict[str, Any]] = {}
        for event in batch:
            if event.event_type.name == CONTRIBUTION_QUOTA_REGISTERED:
                data = event.data
                last[(data["participant_id"], data["year"])] = {
                    "participant_id": data["participant_id"], "year": data["year"],
                    "contributed": data["contributed_this_year"],
                }
        upsert_many(conn, participant_quota, list(last.values()))


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
        if name not in (BANK_CHANGE_COMPLETED, BANK_CHANGE_ABORTED):
            return
        change = bank_changes.c.bank_change_id == data["bank_change_id"]
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
