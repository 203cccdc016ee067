"""The fund account's side of payouts: debit an instalment, refund a payment that finally
failed, close the account when the withdrawal is complete and nothing is left."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy.engine import Connection

from pension_fund_account.adapters.streams import lock_participant_of_account
from pension_fund_account.application.handlers import append_decided, load_account, load_funds
from pension_fund_account.domain import payouts
from pension_fund_account.domain.payouts import debit_for_payout, refund_payout
from pension_shared.ledger import EventStore, Metadata


def _active_account_id(conn: Connection, store: EventStore, participant_id: str) -> str | None:
    return load_funds(conn, store, participant_id)[1].active_fund_account_id


def record_receiving(conn: Connection, store: EventStore, approved: Mapping[str, Any], meta: Metadata) -> None:
    """The platform put the participant in receiving status (A-PACC-5): the fund account
    receives, and contributions end unless the condition allows them to go on (A-CONT-8)."""
    participant_id = approved["participant_id"]
    funds_stream, funds = load_funds(conn, store, participant_id)
    recorded = funds.record_receiving(condition=approved["condition"], since=approved["since"],
                                      may_continue_contributing=approved["may_continue_contributing"])
    if recorded is None:
        return
    append_decided(conn, store, funds_stream, [recorded], participant_id, meta)
    if funds.active_fund_account_id is not None:
        stream, account = load_account(conn, store, funds.active_fund_account_id)
        receiving = account.enter_receiving(since=approved["since"])
        if receiving is not None:
            append_decided(conn, store, stream, [receiving], participant_id, meta)


def record_death(conn: Connection, store: EventStore, died: Mapping[str, Any], meta: Metadata) -> None:
    """The platform registered the participant's death (A-INH-1): contributions end."""
    participant_id = died["participant_id"]
    funds_stream, funds = load_funds(conn, store, participant_id)
    recorded = funds.record_death(date_of_death=died["date_of_death"], recorded_at=died["registered_at"])
    if recorded is not None:
        append_decided(conn, store, funds_stream, [recorded], participant_id, meta)


def debit_instalment(conn: Connection, store: EventStore, instruction: Mapping[str, Any], meta: Metadata) -> None:
    """The participant's current fund account pays: after a bank change, the new one."""
    account_id = _active_account_id(conn, store, instruction["participant_id"]) or instruction["fund_account_id"]
    stream, account = load_account(conn, store, account_id)
    append_decided(conn, store, stream, debit_for_payout(account, instruction), account.participant_id, meta)


def refund_instalment(conn: Connection, store: EventStore, request: Mapping[str, Any], meta: Metadata) -> None:
    account_id = _active_account_id(conn, store, request["participant_id"]) or request["fund_account_id"]
    stream, account = load_account(conn, store, account_id)
    append_decided(conn, store, stream, [refund_payout(account, request)], account.participant_id, meta)


def close_after_withdrawal(conn: Connection, store: EventStore, completed: Mapping[str, Any], meta: Metadata) -> None:
    """B-5: the emptied account is closed and, in the same transaction, is no longer the
    participant's active fund account."""
    account_id = completed.get("fund_account_id")
    if not account_id:
        return
    # Under the person's lock, as a contribution takes it: one to the same person queues behind
    # the closure instead of racing it for either stream's next version.
    lock_participant_of_account(conn, account_id)
    stream, account = load_account(conn, store, account_id)
    participant_id = account.participant_id
    if participant_id is None:  # no such account: nothing to close
        return
    funds_stream, funds = load_funds(conn, store, participant_id)
    closed, unassigned = payouts.close_after_withdrawal(account, funds, reason="benefits fully paid", closed_at=meta.time)
    append_decided(conn, store, stream, closed, participant_id, meta)
    append_decided(conn, store, funds_stream, unassigned, participant_id, meta)
