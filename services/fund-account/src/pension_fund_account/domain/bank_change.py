"""A bank change (A-CHG-1..7, B-4, RULES.md §10.6) as the closed loop decides it: the old bank
takes the request and freezes the account; once the platform confirms, the new account is opened
at the new bank, cash and holdings move in kind, the old account is closed and the person's active
fund account becomes the new one, all decided together; if the platform refuses, the old
account is unfrozen.

Pure domain: the decisions span three aggregates (the participant's funds, the old account, the
new account) and are recorded by the caller in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pension_fund_account.domain.events import Event
from pension_fund_account.domain.fund_account import FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds


@dataclass(frozen=True)
class BankChangeDecision:
    """Events per stream; empty when there was nothing (left) to do."""

    participant: list[Event] = field(default_factory=list)
    old_account: list[Event] = field(default_factory=list)
    new_account: list[Event] = field(default_factory=list)


def request_bank_change(
    funds: ParticipantFunds, account: FundAccount, *, bank_change_id: str, new_bank_code: str,
    new_branch_city: str, on: date, requested_at: str,
) -> BankChangeDecision:
    frozen = account.freeze_for_bank_change(bank_change_id=bank_change_id, new_bank_code=new_bank_code, on=on)
    requested = funds.request_bank_change(
        bank_change_id=bank_change_id, fund_account_id=account.fund_account_id, new_bank_code=new_bank_code,
        new_branch_city=new_branch_city, requested_at=requested_at,
    )
    return BankChangeDecision(participant=[requested], old_account=[frozen])


def complete_bank_change(
    funds: ParticipantFunds, old: FundAccount, *, bank_change_id: str, new_fund_account_id: str,
    confirmed_remaining_quota: int, completed_at: str,
) -> BankChangeDecision:
    """The platform confirmed (A-CHG-2): everything moves to a new account at the new bank.
    A confirmation of a change no longer in progress (redelivered, or already aborted) does nothing."""
    change = funds.bank_change_in_progress(bank_change_id)
    if change is None:
        return BankChangeDecision()
    assert old.participant_id is not None
    new = FundAccount(new_fund_account_id)
    opened = new.open(
        participant_id=old.participant_id, bank_code=change.new_bank_code, branch_city=change.new_branch_city,
        opened_at=completed_at, transferred_from=old.fund_account_id, bank_change_id=bank_change_id,
    )
    new.apply(opened.name, opened.data)
    transferred = {
        "cash_transferred": old.cash,
        "holdings_transferred": [
            {"product_code": code, "units": held.units, "cost": held.cost} for code, held in sorted(old.holdings.items())
        ],
    }
    out = old.transfer_out(bank_change_id=bank_change_id, to_fund_account_id=new_fund_account_id, closed_at=completed_at)
    received = new.transfer_in(out)
    if funds.receiving:  # the new account pays the benefits the old one paid (A-PACC-5)
        receiving = new.enter_receiving(since=funds.receiving_since or completed_at)
        received = [*received, *([receiving] if receiving is not None else [])]
    completed = funds.complete_bank_change(
        change, new_fund_account_id=new_fund_account_id, transferred=transferred,
        confirmed_remaining_quota=confirmed_remaining_quota, completed_at=completed_at,
    )
    return BankChangeDecision(participant=[completed], old_account=out, new_account=[opened, *received])


def abort_bank_change(
    funds: ParticipantFunds, old: FundAccount, *, bank_change_id: str, reason: str, aborted_at: str,
) -> BankChangeDecision:
    """The platform refused (for example the person has died): the compensation unfreezes the old
    account, which carries on as before."""
    change = funds.bank_change_in_progress(bank_change_id)
    if change is None:
        return BankChangeDecision()
    aborted = funds.abort_bank_change(change, reason=reason, aborted_at=aborted_at)
    return BankChangeDecision(
        participant=[aborted], old_account=old.unfreeze(bank_change_id=bank_change_id, reason=reason),
    )
