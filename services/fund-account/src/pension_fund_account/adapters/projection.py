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
from pension_shared.bulk_rebuild import Load, SetBased
from pension_shared.envelope import Envelope, event_type
from pension_shared.projection_batch import (
    FoldedRows, delete_many, existing_rows, insert_many, update_many, upsert_many,
)


STATUS_AFTER = {FUND_ACCOUNT_FROZEN: FROZEN, FUND_ACCOUNT_UNFROZEN: ACTIVE, FUND_ACCOUNT_CLOSED: CLOSED,
                FUND_ACCOUNT_RECEIVING: RECEIVING}
MOVES_MONEY = (
    CONTRIBUTION_RECEIVED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, INCOME_CREDITED, CASH_TRANSFERRED_OUT,
    TRANSFER_IN_RECEIVED, HOLDING_TRANSFERRED_OUT, HOLDING_TRANSFERRED_IN, PAYOUT_DEBITED, PAYOUT_REFUNDED,
)


def _v1(name: str) -> str:
    return event_type("fund-account", name, 1)


def _listed(names) -> str:  # noqa: ANN001
    return ", ".join(f"'{_v1(name)}'" for name in names)


class ParticipantRecognisedProjection:
    name = "known_participants"
    tables = (known_participants,)
    set_based = SetBased(reads=frozenset({_v1(PARTICIPANT_RECOGNISED)}), steps=(Load(known_participants, f"""
        SELECT d.participant_id, d.insurance_type, d.insured_region, d.registered_at
        FROM events e, jsonb_to_record(e.data_jsonb)
             AS d (participant_id text, insurance_type text, insured_region text, registered_at text)
        WHERE e.type = '{_v1(PARTICIPANT_RECOGNISED)}'
    """),))

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
    # An account's status is that of its last status change after its opening, its cash the
    # cash after its last move of money after it, its version the sequence of the last of
    # those. A holding (the units of every move are not zero) is emptied whenever the running
    # sum of its units comes back to zero: what is held is the moves after the last emptying.
    set_based = SetBased(reads=frozenset(_v1(name) for name in (FUND_ACCOUNT_OPENED, *STATUS_AFTER, *MOVES_MONEY)),
                         steps=(Load(fund_accounts, f"""
        WITH stored AS (
            SELECT e.position, e.type, e.sequence, d.*
            FROM events e, jsonb_to_record(e.data_jsonb) AS d (
                fund_account_id text, participant_id text, bank_code text, branch_city text, opened_at text,
                status_after json, cash_after bigint)
            WHERE e.type IN ({_listed((FUND_ACCOUNT_OPENED, *STATUS_AFTER, *MOVES_MONEY))})
        ), last_status AS (
            SELECT DISTINCT ON (fund_account_id COLLATE "C") fund_account_id, position, sequence,
                   CASE type {" ".join(f"WHEN '{_v1(name)}' THEN '{status}'" for name, status in STATUS_AFTER.items()
                                       if name != FUND_ACCOUNT_UNFROZEN)}
                             ELSE coalesce(status_after #>> '{{}}', '{ACTIVE}') END AS status
            FROM stored WHERE type IN ({_listed(STATUS_AFTER)})
            ORDER BY fund_account_id COLLATE "C", position DESC
        ), last_move AS (
            SELECT DISTINCT ON (fund_account_id COLLATE "C") fund_account_id, position, sequence, cash_after
            FROM stored WHERE type IN ({_listed(MOVES_MONEY)})
            ORDER BY fund_account_id COLLATE "C", position DESC
        )
        SELECT o.fund_account_id, o.participant_id, o.bank_code, o.branch_city,
               CASE WHEN s.position > o.position THEN s.status ELSE '{ACTIVE}' END,
               CASE WHEN m.position > o.position THEN m.cash_after ELSE 0 END,
               o.opened_at,
               CASE WHEN s.position > o.position AND (m.position IS NULL OR s.position > m.position) THEN s.sequence
                    WHEN m.position > o.position THEN m.sequence
                    ELSE o.sequence END
        FROM stored o
        LEFT JOIN last_status s ON s.fund_account_id = o.fund_account_id
        LEFT JOIN last_move m ON m.fund_account_id = o.fund_account_id
        WHERE o.type = '{_v1(FUND_ACCOUNT_OPENED)}'
    """), Load(holdings, f"""
        WITH moves AS (
            SELECT d.fund_account_id, d.product_code, e.position,
                   CASE e.type WHEN '{_v1(PRODUCT_PURCHASED)}' THEN d.units WHEN '{_v1(HOLDING_TRANSFERRED_IN)}' THEN d.units
                               ELSE -d.units END AS units,
                   CASE e.type WHEN '{_v1(PRODUCT_PURCHASED)}' THEN d.amount WHEN '{_v1(PRODUCT_REDEEMED)}' THEN -d.cost_released
                               WHEN '{_v1(HOLDING_TRANSFERRED_IN)}' THEN d.cost ELSE -d.cost END AS cost
            FROM events e, jsonb_to_record(e.data_jsonb) AS d (
                fund_account_id text, product_code text, units bigint, amount bigint, cost_released bigint, cost bigint)
            WHERE e.type IN ({_listed((PRODUCT_PURCHASED, PRODUCT_REDEEMED, HOLDING_TRANSFERRED_IN, HOLDING_TRANSFERRED_OUT))})
        ), held AS (
            SELECT *, sum(units) OVER (PARTITION BY fund_account_id, product_code ORDER BY position) AS held FROM moves
        ), emptied AS (
            SELECT *, max(position) FILTER (WHERE held = 0) OVER (PARTITION BY fund_account_id, product_code) AS emptied
            FROM held
        )
        SELECT fund_account_id, product_code, sum(units), sum(cost) FILTER (WHERE position > coalesce(emptied, 0))
        FROM emptied GROUP BY fund_account_id, product_code HAVING sum(units) <> 0
    """)))

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


class ProductsProjection:
    name = "products"
    tables = (products,)
    set_based = SetBased(reads=frozenset({_v1(PRODUCT_LISTED)}), steps=(Load(products, f"""
        SELECT d.product_code, d.name, d.product_type, d.eligible_from, d.listed_at
        FROM events e, jsonb_to_record(e.data_jsonb)
             AS d (product_code text, name text, product_type text, eligible_from text, listed_at text)
        WHERE e.type = '{_v1(PRODUCT_LISTED)}'
    """),))

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
    set_based = SetBased(reads=frozenset({_v1(CONTRIBUTION_QUOTA_REGISTERED)}), steps=(Load(participant_quota, f"""
        SELECT DISTINCT ON (d.participant_id COLLATE "C", d.year) d.participant_id, d.year, d.contributed_this_year
        FROM events e, jsonb_to_record(e.data_jsonb)
             AS d (participant_id text, year integer, contributed_this_year bigint)
        WHERE e.type = '{_v1(CONTRIBUTION_QUOTA_REGISTERED)}'
        ORDER BY d.participant_id COLLATE "C", d.year, e.position DESC
    """),))

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
    # A change's status and time are those of its last completion or abortion after its request;
    # its new account that of its last completion, its reason that of its last abortion.
    set_based = SetBased(
        reads=frozenset(_v1(name) for name in (BANK_CHANGE_REQUESTED, BANK_CHANGE_COMPLETED, BANK_CHANGE_ABORTED)),
        steps=(Load(bank_changes, f"""
        WITH stored AS (
            SELECT e.position, e.type, e.time, d.*
            FROM events e, jsonb_to_record(e.data_jsonb) AS d (
                bank_change_id text, participant_id text, old_fund_account_id text, old_bank_code text,
                new_bank_code text, new_branch_city text, requested_at text, new_fund_account_id text, reason text)
            WHERE e.type IN ({_listed((BANK_CHANGE_REQUESTED, BANK_CHANGE_COMPLETED, BANK_CHANGE_ABORTED))})
        ), ended AS (
            SELECT DISTINCT ON (bank_change_id COLLATE "C") bank_change_id, position, time,
                   CASE WHEN type = '{_v1(BANK_CHANGE_COMPLETED)}' THEN '{COMPLETED}' ELSE '{ABORTED}' END AS status
            FROM stored WHERE type IN ({_listed((BANK_CHANGE_COMPLETED, BANK_CHANGE_ABORTED))})
            ORDER BY bank_change_id COLLATE "C", position DESC
        ), completed AS (
            SELECT DISTINCT ON (bank_change_id COLLATE "C") bank_change_id, position, new_fund_account_id
            FROM stored WHERE type = '{_v1(BANK_CHANGE_COMPLETED)}'
            ORDER BY bank_change_id COLLATE "C", position DESC
        ), aborted AS (
            SELECT DISTINCT ON (bank_change_id COLLATE "C") bank_change_id, position, reason
            FROM stored WHERE type = '{_v1(BANK_CHANGE_ABORTED)}'
            ORDER BY bank_change_id COLLATE "C", position DESC
        )
        SELECT r.bank_change_id, r.participant_id, r.old_fund_account_id, r.old_bank_code, r.new_bank_code,
               r.new_branch_city,
               CASE WHEN c.position > r.position THEN c.new_fund_account_id END,
               CASE WHEN x.position > r.position THEN x.status ELSE '{REQUESTED}' END,
               CASE WHEN a.position > r.position THEN left(a.reason, 256) END,
               r.requested_at,
               CASE WHEN x.position > r.position THEN x.time ELSE r.time END
        FROM stored r
        LEFT JOIN ended x ON x.bank_change_id = r.bank_change_id
        LEFT JOIN completed c ON c.bank_change_id = r.bank_change_id
        LEFT JOIN aborted a ON a.bank_change_id = r.bank_change_id
        WHERE r.type = '{_v1(BANK_CHANGE_REQUESTED)}'
    """),))

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
