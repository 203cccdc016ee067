"""Money leaving the closed loop for a payout (A-PAY-6/7, A-INH-1, B-5).

The payout service asks for an instalment; the fund account takes its gross from the balance
(cash plus holdings at cost), redeeming holdings when cash is short, and the payout service
then withholds the tax and pays the net. A payment that finally fails comes back as a refund.
When a withdrawal is complete and nothing is left, the account is closed, and it stops being the
participant's active fund account. Pure domain."""

from __future__ import annotations

from typing import Any, Mapping

from pension_fund_account.domain.events import (
    FUND_ACCOUNT_CLOSED, PAYOUT_DEBIT_REFUSED, PAYOUT_DEBITED, PAYOUT_REFUNDED, PRODUCT_REDEEMED, Event,
)
from pension_fund_account.domain.fund_account import CLOSED, FROZEN, FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds


def balance(account: FundAccount) -> int:
    return account.cash + sum(h.cost for h in account.holdings.values())


def gross_for(basis: Mapping[str, Any], available: int) -> int:
    if basis["kind"] == "all":
        return available
    if basis["kind"] == "fixed":
        return min(int(basis["amount"]), available)
    return available // int(basis["denominator"])


def debit_for_payout(account: FundAccount, instruction: Mapping[str, Any]) -> list[Event]:
    """The events of taking an instalment's gross: forced redemptions at cost when cash is
    short (there is no market price inside the loop; the bank's redemption proceeds would
    replace the cost here), then the debit itself. Refused, with nothing moved, when the account
    is frozen for a bank change or closed."""
    payout_id = instruction["payout_id"]
    if account.status in (FROZEN, CLOSED):
        return [Event(PAYOUT_DEBIT_REFUSED, {
            "payout_id": payout_id, "withdrawal_id": instruction["withdrawal_id"],
            "participant_id": account.participant_id, "fund_account_id": account.fund_account_id,
            "reason": f"the fund account is {account.status}", "account_status": account.status,
        })]
    available = balance(account)
    gross = gross_for(instruction["basis"], available)
    events: list[Event] = []
    cash = account.cash
    for product_code in sorted(account.holdings):
        if cash >= gross:
            break
        held = account.holdings[product_code]
        cash += held.cost
        events.append(Event(PRODUCT_REDEEMED, {
            "fund_account_id": account.fund_account_id, "participant_id": account.participant_id,
            "product_code": product_code, "units": held.units, "proceeds": held.cost, "cost_released": held.cost,
            "realised_gain": 0, "cash_after": cash, "for_payout": payout_id,
        }))
    events.append(Event(PAYOUT_DEBITED, {
        "payout_id": payout_id, "withdrawal_id": instruction["withdrawal_id"],
        "instalment_no": instruction["instalment_no"], "participant_id": account.participant_id,
        "fund_account_id": account.fund_account_id, "bank_code": account.bank_code,
        "branch_city": account.branch_city, "gross": gross, "cash_after": cash - gross,
        "balance_after": available - gross,
    }))
    return events


def refund_payout(account: FundAccount, request: Mapping[str, Any]) -> Event:
    return Event(PAYOUT_REFUNDED, {
        "payout_id": request["payout_id"], "withdrawal_id": request["withdrawal_id"],
        "participant_id": account.participant_id, "fund_account_id": account.fund_account_id,
        "amount": request["amount"], "cash_after": account.cash + request["amount"],
    })


def close_when_empty(account: FundAccount, *, reason: str) -> list[Event]:
    """B-5: a fund account whose benefits are fully paid, with no holdings and a zero balance,
    is closed."""
    if account.status == CLOSED or account.cash != 0 or account.holdings:
        return []
    return [Event(FUND_ACCOUNT_CLOSED, {"fund_account_id": account.fund_account_id,
                                        "participant_id": account.participant_id, "reason": reason})]


def close_after_withdrawal(
    account: FundAccount, funds: ParticipantFunds, *, reason: str, closed_at: str,
) -> tuple[list[Event], list[Event]]:
    """``close_when_empty``, and with the closure the participant's funds learn the account is
    no longer their active one (A-CONT-8: one who withdrew on another condition than age may open
    another and go on contributing): the events of the account's stream, then of the participant's,
    recorded together by the caller."""
    closed = close_when_empty(account, reason=reason)
    if not closed:
        return [], []
    unassigned = funds.unassign_fund_account(account.fund_account_id, reason=reason, unassigned_at=closed_at)
    return closed, [] if unassigned is None else [unassigned]
