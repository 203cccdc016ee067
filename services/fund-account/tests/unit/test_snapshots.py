"""Snapshots of the fund account and of the participant's funds: restored from a snapshot taken
anywhere in a history (and kept as JSON), then given the rest of it, each aggregate is exactly
the one folded from every event."""

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import orjson
import pytest

from fund_account_support.builders import NOW, listed, random_id
from pension_fund_account.domain.bank_change import BankChangeDecision, abort_bank_change, request_bank_change
from pension_fund_account.domain.events import (
    FUND_ACCOUNT_ASSIGNED, PARTICIPANT_RECOGNISED, Event,
)
from pension_fund_account.domain.fund_account import FROZEN, FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_shared.envelope import canonical_json
from pension_shared.policy import policy_on

START = date(2024, 11, 20)


@dataclass
class History:
    """An account and its participant, with every event each was given."""

    funds: ParticipantFunds
    account: FundAccount
    funds_events: list[tuple[str, dict]] = field(default_factory=list)
    account_events: list[tuple[str, dict]] = field(default_factory=list)

    def to_funds(self, *events: Event) -> None:
        for event in events:
            self.funds.apply(event.name, event.data)
            self.funds_events.append((event.name, event.data))

    def to_account(self, *events: Event) -> None:
        for event in events:
            self.account.apply(event.name, event.data)
            self.account_events.append((event.name, event.data))

    def decided(self, decision: BankChangeDecision) -> None:
        self.to_funds(*decision.participant)
        self.to_account(*decision.old_account)


def a_history(seed: int, steps: int = 160) -> History:
    """Contributions over several years, purchases, redemptions, income, bank changes requested
    and abandoned, and the receiving status: commands decided by the aggregates themselves."""
    rng = random.Random(seed)
    participant_id, fund_account_id = random_id("P"), random_id("FA")
    history = History(ParticipantFunds(participant_id), FundAccount(fund_account_id))
    history.to_funds(Event(PARTICIPANT_RECOGNISED, {"participant_id": participant_id}),
                     Event(FUND_ACCOUNT_ASSIGNED, {"fund_account_id": fund_account_id, "bank_code": "ICBC"}))
    history.to_account(history.account.open(participant_id=participant_id, bank_code="ICBC", branch_city="Zhengzhou",
                                            opened_at=NOW))
    products = [listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(START))
                for _ in range(3)]
    day = START
    for step in range(steps):
        day += timedelta(days=rng.choice((0, 1, 3, 30)))
        account, funds = history.account, history.funds
        action = rng.random()
        if account.status == FROZEN:
            change = funds.pending_bank_change
            history.decided(abort_bank_change(funds, account, bank_change_id=change.bank_change_id, reason="refused",
                                              aborted_at=NOW))
        elif action < 0.45 and funds.remaining_quota(day.year, 1_200_000) >= 100 and not funds.contributions_ended:
            amount = rng.randint(100, min(funds.remaining_quota(day.year, 1_200_000), 300_000))
            received, registered = account.receive_contribution(
                funds, contribution_id=f"C{step}", amount=amount, channel="bank_transfer", reference="r", on=day)
            history.to_account(received)
            history.to_funds(registered)
        elif action < 0.6 and account.cash >= 100:
            amount = rng.randint(100, account.cash)
            history.to_account(account.purchase(rng.choice(products), amount=amount, units=amount * 10_000))
        elif action < 0.72 and account.holdings:
            code, held = rng.choice(sorted(account.holdings.items()))
            units = rng.randint(1, held.units)
            history.to_account(account.redeem(code, units=units, proceeds=rng.randint(0, units // 5_000)))
        elif action < 0.84:
            history.to_account(account.credit_income(amount=rng.randint(1, 5_000), kind="interest", product_code=None))
        elif action < 0.95 and day.isoformat() not in account.contribution_days:
            history.decided(request_bank_change(funds, account, bank_change_id=f"BC{step}", new_bank_code="CCB",
                                                new_branch_city="Beijing", on=day, requested_at=NOW))
        elif not funds.receiving and step > steps * 3 // 4:
            history.to_funds(funds.record_receiving(condition="retirement_age", may_continue_contributing=rng.random() < .5,
                                                    since=NOW))
            received = account.enter_receiving(since=NOW)
            if received is not None:
                history.to_account(received)
    return history


def kept(state: dict) -> dict:
    """A snapshot's state as the store keeps it and gives it back."""
    return orjson.loads(canonical_json(state))


@pytest.mark.parametrize("seed", range(6))
def test_an_account_restored_from_a_snapshot_anywhere_in_its_history_is_the_account_folded_from_every_event(seed):
    history = a_history(seed)
    events, fund_account_id = history.account_events, history.account.fund_account_id
    folded = FundAccount.from_events(fund_account_id, events)
    assert folded == history.account and folded.holdings and len(events) > 100
    for split in range(len(events) + 1):
        state = kept(FundAccount.from_events(fund_account_id, events[:split]).snapshot_state())
        assert FundAccount.from_events(fund_account_id, events[split:], state) == folded, split


@pytest.mark.parametrize("seed", range(6))
def test_a_participants_funds_restored_from_a_snapshot_anywhere_are_the_funds_folded_from_every_event(seed):
    history = a_history(seed)
    events, participant_id = history.funds_events, history.funds.participant_id
    folded = ParticipantFunds.from_events(participant_id, events)
    assert folded == history.funds and len(folded.contributed_by_year) >= 2 and folded.bank_changes
    for split in range(len(events) + 1):
        state = kept(ParticipantFunds.from_events(participant_id, events[:split]).snapshot_state())
        assert ParticipantFunds.from_events(participant_id, events[split:], state) == folded, split


PRODUCT = listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(START))


def decisions(account: FundAccount, funds: ParticipantFunds) -> list:
    """What the aggregates decide on a contribution, a purchase and a redemption (or refuse)."""
    commands = [
        lambda: account.receive_contribution(funds, contribution_id="C", amount=100, channel="cash", reference="r",
                                             on=date(2027, 3, 1)),
        lambda: account.purchase(PRODUCT, amount=account.cash, units=1),
        lambda: [account.redeem(code, units=held.units, proceeds=1) for code, held in sorted(account.holdings.items())],
    ]
    decided = []
    for command in commands:
        try:
            decided.append(command())
        except Exception as refused:  # noqa: BLE001 - a refusal is a decision too
            decided.append((type(refused).__name__, str(refused)))
    return decided


@pytest.mark.parametrize("seed", range(6))
def test_restored_aggregates_decide_as_the_folded_ones(seed):
    history = a_history(seed)
    restored = decisions(
        FundAccount.from_events(history.account.fund_account_id, [], kept(history.account.snapshot_state())),
        ParticipantFunds.from_events(history.funds.participant_id, [], kept(history.funds.snapshot_state())),
    )
    assert restored == decisions(
        FundAccount.from_events(history.account.fund_account_id, history.account_events),
        ParticipantFunds.from_events(history.funds.participant_id, history.funds_events),
    )
