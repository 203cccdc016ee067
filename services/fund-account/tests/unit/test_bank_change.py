"""The bank change as the closed loop decides it (A-CHG-1..7, B-4): given events, when a
command or the platform's answer, then the events."""

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from fund_account_support.builders import NOW, listed, opened_account, recognised
from pension_fund_account.domain.bank_change import (
    BankChangeDecision, abort_bank_change, complete_bank_change, request_bank_change,
)
from pension_fund_account.domain.errors import AccountFrozen, BankChangeNotAllowed, ContributionCapExceeded
from pension_fund_account.domain.events import (
    BANK_CHANGE_ABORTED, BANK_CHANGE_COMPLETED, BANK_CHANGE_REQUESTED, CASH_TRANSFERRED_OUT,
    CONTRIBUTION_QUOTA_REGISTERED, CONTRIBUTION_RECEIVED, FUND_ACCOUNT_CLOSED, FUND_ACCOUNT_FROZEN,
    FUND_ACCOUNT_OPENED, FUND_ACCOUNT_RECEIVING, FUND_ACCOUNT_UNFROZEN, HOLDING_TRANSFERRED_IN, HOLDING_TRANSFERRED_OUT,
    TRANSFER_IN_RECEIVED, Event,
)
from pension_fund_account.domain.fund_account import ACTIVE, CLOSED, FROZEN, RECEIVING, FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_shared.policy import policy_on

CONTRIBUTION_DAY = date(2025, 8, 15)
NEXT_DAY = CONTRIBUTION_DAY + timedelta(days=1)
CAP = 1_200_000


@dataclass
class Given:
    funds: ParticipantFunds
    account: FundAccount

    def record(self, decision: BankChangeDecision) -> BankChangeDecision:
        for event in decision.participant:
            self.funds.apply(event.name, event.data)
        for event in decision.old_account:
            self.account.apply(event.name, event.data)
        return decision


def a_participant_who_contributed(amount: int = 400_000, *, on: date = CONTRIBUTION_DAY) -> Given:
    funds = recognised()
    account = opened_account(funds, bank_code="ICBC")
    received, registered = account.receive_contribution(
        funds, contribution_id="C1", amount=amount, channel="bank_transfer", reference="r", on=on,
    )
    account.apply(received.name, received.data)
    funds.apply(registered.name, registered.data)
    return Given(funds, account)


def invested(given: Given, amount: int, units: int) -> str:
    product = listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(CONTRIBUTION_DAY))
    purchased = given.account.purchase(product, amount=amount, units=units)
    given.account.apply(purchased.name, purchased.data)
    return product.product_code


def requested(given: Given, *, on: date = NEXT_DAY, bank_change_id: str = "BC1", new_bank_code: str = "CCB"):
    return given.record(request_bank_change(
        given.funds, given.account, bank_change_id=bank_change_id, new_bank_code=new_bank_code,
        new_branch_city="Beijing", on=on, requested_at=NOW,
    ))


def completed(given: Given, *, bank_change_id: str = "BC1", new_fund_account_id: str = "FANEW") -> BankChangeDecision:
    return given.record(complete_bank_change(
        given.funds, given.account, bank_change_id=bank_change_id, new_fund_account_id=new_fund_account_id,
        confirmed_remaining_quota=CAP - given.funds.contributed_in(2025), completed_at=NOW,
    ))


def replayed(events: list[Event], fund_account_id: str = "FANEW") -> FundAccount:
    return FundAccount.from_events(fund_account_id, [(e.name, e.data) for e in events])


def test_a_bank_change_requested_the_day_after_a_contribution_freezes_the_old_account():
    given = a_participant_who_contributed()

    decision = requested(given)

    assert decision.participant == [Event(BANK_CHANGE_REQUESTED, {
        "bank_change_id": "BC1", "participant_id": given.funds.participant_id,
        "old_fund_account_id": given.account.fund_account_id, "old_bank_code": "ICBC", "new_bank_code": "CCB",
        "new_branch_city": "Beijing", "requested_at": NOW,
    })]
    assert decision.old_account == [Event(FUND_ACCOUNT_FROZEN, {
        "fund_account_id": given.account.fund_account_id, "participant_id": given.funds.participant_id,
        "reason": "bank_change", "bank_change_id": "BC1",
    })]
    assert given.account.status == FROZEN


def test_a_bank_change_is_refused_on_a_day_the_account_received_a_contribution():
    given = a_participant_who_contributed()

    with pytest.raises(BankChangeNotAllowed) as refused:
        requested(given, on=CONTRIBUTION_DAY)
    assert refused.value.code == "BANK_CHANGE_NOT_ALLOWED"
    assert given.account.status == ACTIVE and given.funds.pending_bank_change is None


def test_a_bank_change_is_refused_while_another_is_in_progress_and_once_the_account_is_closed():
    given = a_participant_who_contributed()
    requested(given)

    with pytest.raises(BankChangeNotAllowed):
        requested(given, bank_change_id="BC2")
    completed(given)
    with pytest.raises(BankChangeNotAllowed) as refused:
        requested(given, bank_change_id="BC3")
    assert refused.value.extra["account_status"] == CLOSED


def test_a_bank_change_to_the_bank_that_already_holds_the_account_is_refused():
    given = a_participant_who_contributed()

    with pytest.raises(BankChangeNotAllowed):
        requested(given, new_bank_code="ICBC")


def test_a_frozen_account_refuses_contributions_purchases_and_redemptions():
    given = a_participant_who_contributed()
    product_code = invested(given, 100_000, 1_000_000_000)
    requested(given)
    product = listed("public_fund", eligible_from=date(2022, 11, 25), code=product_code).eligible_product(
        policy_on(NEXT_DAY))

    with pytest.raises(AccountFrozen):
        given.account.receive_contribution(
            given.funds, contribution_id="C2", amount=1, channel="cash", reference="r", on=NEXT_DAY,
        )
    with pytest.raises(AccountFrozen):
        given.account.purchase(product, amount=1, units=1)
    with pytest.raises(AccountFrozen):
        given.account.redeem(product_code, units=1, proceeds=1)


def test_completion_moves_all_cash_and_holdings_in_kind_and_closes_the_old_account():
    given = a_participant_who_contributed(400_000)
    product_code = invested(given, 100_000, 1_000_000_000)
    old_id = given.account.fund_account_id
    requested(given)

    decision = completed(given)

    assert [e.name for e in decision.old_account] == [CASH_TRANSFERRED_OUT, HOLDING_TRANSFERRED_OUT, FUND_ACCOUNT_CLOSED]
    assert [e.name for e in decision.new_account] == [FUND_ACCOUNT_OPENED, TRANSFER_IN_RECEIVED, HOLDING_TRANSFERRED_IN]
    opened = decision.new_account[0].data
    assert (opened["bank_code"], opened["transferred_from"], opened["bank_change_id"]) == ("CCB", old_id, "BC1")
    assert decision.old_account[0].data["amount"] == decision.new_account[1].data["amount"] == 300_000
    moved = {k: decision.new_account[2].data[k] for k in ("product_code", "units", "cost")}
    assert moved == {"product_code": product_code, "units": 1_000_000_000, "cost": 100_000}
    assert (given.account.status, given.account.cash, given.account.holdings) == (CLOSED, 0, {})
    new = replayed(decision.new_account)
    assert (new.status, new.bank_code, new.cash) == (ACTIVE, "CCB", 300_000)
    assert (new.holdings[product_code].units, new.holdings[product_code].cost) == (1_000_000_000, 100_000)
    assert decision.participant[0].name == BANK_CHANGE_COMPLETED
    assert (given.funds.active_fund_account_id, given.funds.active_bank_code) == ("FANEW", "CCB")


def test_transfers_are_not_contributions_and_the_new_bank_sees_exactly_the_remaining_quota():
    given = a_participant_who_contributed(400_000)
    requested(given)

    decision = completed(given)

    names = {e.name for e in decision.new_account + decision.old_account + decision.participant}
    assert not names & {CONTRIBUTION_RECEIVED, CONTRIBUTION_QUOTA_REGISTERED}
    assert decision.new_account[1].data["contribution"] is False
    assert given.funds.contributed_in(2025) == 400_000
    new = replayed(decision.new_account)
    with pytest.raises(ContributionCapExceeded) as refused:
        new.receive_contribution(given.funds, contribution_id="C2", amount=800_001, channel="cash", reference="r",
                                 on=NEXT_DAY)
    assert refused.value.extra["remaining_quota"] == "8000.00"
    received, _ = new.receive_contribution(given.funds, contribution_id="C3", amount=800_000, channel="cash",
                                           reference="r", on=NEXT_DAY)
    assert received.data["remaining_quota"] == 0


def test_a_redelivered_confirmation_does_nothing_twice():
    given = a_participant_who_contributed()
    requested(given)
    completed(given)

    again = completed(given, new_fund_account_id="FAOTHER")

    assert again == BankChangeDecision()
    assert given.funds.active_fund_account_id == "FANEW"


def test_a_rejection_by_the_platform_unfreezes_the_old_account_and_aborts_the_change():
    given = a_participant_who_contributed()
    requested(given)

    decision = given.record(abort_bank_change(
        given.funds, given.account, bank_change_id="BC1", reason="the participant is deceased", aborted_at=NOW,
    ))

    assert [e.name for e in decision.participant] == [BANK_CHANGE_ABORTED]
    assert [e.name for e in decision.old_account] == [FUND_ACCOUNT_UNFROZEN]
    assert given.account.status == ACTIVE and given.funds.pending_bank_change is None
    assert given.funds.active_fund_account_id == given.account.fund_account_id
    assert completed(given) == BankChangeDecision()
    assert abort_bank_change(given.funds, given.account, bank_change_id="BC1", reason="again",
                             aborted_at=NOW) == BankChangeDecision()


def test_money_is_conserved_and_both_ledgers_reconcile_across_a_bank_change():
    given = a_participant_who_contributed(1_000_000)
    product_code = invested(given, 600_000, 6_000_000_000)
    redeemed = given.account.redeem(product_code, units=1_000_000_000, proceeds=130_000)
    given.account.apply(redeemed.name, redeemed.data)
    income = given.account.credit_income(amount=2_345, kind="interest", product_code=None)
    given.account.apply(income.name, income.data)
    requested(given)

    decision = completed(given)

    new = replayed(decision.new_account)
    contributed, gains = 1_000_000, redeemed.data["realised_gain"]
    assert new.cash + sum(h.cost for h in new.holdings.values()) == contributed + gains + income.data["amount"]
    assert (given.account.cash, given.account.holdings) == (0, {})
    signed = {CASH_TRANSFERRED_OUT: -1, TRANSFER_IN_RECEIVED: 1, HOLDING_TRANSFERRED_OUT: -1, HOLDING_TRANSFERRED_IN: 1}
    moved = [signed[e.name] * e.data.get("amount", e.data.get("cost")) for e in decision.old_account + decision.new_account
             if e.name in signed]
    assert sum(moved) == 0 and sum(m for m in moved if m > 0) == new.cash + new.holdings[product_code].cost
    assert [e.data["cash_after"] for e in decision.new_account[1:]] == [new.cash, new.cash]


def test_the_new_account_of_a_participant_in_receiving_status_receives_from_the_start():
    """A-PACC-5: the account that pays the benefits after a bank change is in receiving status
    as the old one was, since the participant's date."""
    given = a_participant_who_contributed()
    recorded = given.funds.record_receiving(condition="unemployment", may_continue_contributing=True, since="2025-08-10")
    given.funds.apply(recorded.name, recorded.data)
    receiving = given.account.enter_receiving(since="2025-08-10")
    given.account.apply(receiving.name, receiving.data)
    requested(given)

    decision = completed(given)

    assert decision.new_account[-1] == Event(FUND_ACCOUNT_RECEIVING, {
        "fund_account_id": "FANEW", "participant_id": given.funds.participant_id, "since": "2025-08-10"})
    assert replayed(decision.new_account).status == RECEIVING


def test_the_new_account_of_a_participant_not_receiving_is_active():
    given = a_participant_who_contributed()
    requested(given)

    decision = completed(given)

    assert FUND_ACCOUNT_RECEIVING not in [e.name for e in decision.new_account]
    assert replayed(decision.new_account).status == ACTIVE
