import random
from datetime import date, datetime

import pytest

from fund_account_support.builders import listed, opened_account, recognised
from pension_fund_account.domain.errors import AccountFrozen, ContributionCapExceeded, InsufficientFunds, ProductNotEligible
from pension_fund_account.domain.events import (
    CONTRIBUTION_QUOTA_REGISTERED, CONTRIBUTION_RECEIVED, INCOME_CREDITED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, Event,
)
from pension_fund_account.domain.fund_account import FROZEN, FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_shared.policy import policy_on
from pension_shared.clock import business_date
from pension_shared.errors import DomainError

DAY = date(2025, 8, 15)


def contribute(account: FundAccount, funds: ParticipantFunds, amount: int, *, on: date = DAY, cid: str = "C1"):
    received, registered = account.receive_contribution(
        funds, contribution_id=cid, amount=amount, channel="bank_transfer", reference="ref", on=on,
    )
    account.apply(received.name, received.data)
    funds.apply(registered.name, registered.data)
    return received, registered


def funded_account(cash: int) -> tuple[FundAccount, ParticipantFunds]:
    funds = recognised()
    account = opened_account(funds)
    contribute(account, funds, cash)
    return account, funds


def test_a_contribution_is_received_and_registered_in_the_participants_quota():
    funds = recognised(contributed={2025: 100_000})
    account = opened_account(funds)

    received, registered = account.receive_contribution(
        funds, contribution_id="C1", amount=50_000, channel="cash", reference="counter 7", on=DAY,
    )

    assert received == Event(CONTRIBUTION_RECEIVED, {
        "fund_account_id": account.fund_account_id, "participant_id": funds.participant_id, "contribution_id": "C1",
        "amount": 50_000, "channel": "cash", "reference": "counter 7", "year": 2025,
        "contributed_this_year": 150_000, "remaining_quota": 1_050_000, "cash_after": 50_000, "booked_on": "2025-08-15",
    })
    assert registered.name == CONTRIBUTION_QUOTA_REGISTERED
    assert registered.data["contributed_this_year"] == 150_000


def test_a_contribution_that_exactly_reaches_the_annual_cap_is_accepted():
    account, funds = funded_account(1_100_000)

    received, _ = contribute(account, funds, 100_000, cid="C2")

    assert received.data["remaining_quota"] == 0
    assert account.cash == 1_200_000


def test_a_contribution_one_fen_over_the_annual_cap_is_refused_with_the_remaining_quota():
    account, funds = funded_account(1_100_000)

    with pytest.raises(ContributionCapExceeded) as refused:
        contribute(account, funds, 100_001, cid="C2")
    assert refused.value.extra["remaining_quota"] == "1000.00"
    assert account.cash == 1_100_000


def test_contributions_at_another_bank_earlier_in_the_year_count_against_the_cap():
    funds = recognised(contributed={2025: 1_150_000})
    account = opened_account(funds, bank_code="CCB")

    with pytest.raises(ContributionCapExceeded) as refused:
        contribute(account, funds, 50_001)
    assert refused.value.extra["remaining_quota"] == "500.00"


@pytest.mark.parametrize(("business_time", "year"), [
    ("2025-12-31T23:30:00+08:00", 2025),
    ("2026-01-01T00:10:00+08:00", 2026),
    ("2025-12-31T16:10:00+00:00", 2026),
])
def test_the_contribution_year_is_the_calendar_year_in_shanghai(business_time, year):
    funds = recognised(contributed={2025: 1_200_000})
    account = opened_account(funds)
    on = business_date(datetime.fromisoformat(business_time))

    if year == 2025:
        with pytest.raises(ContributionCapExceeded):
            contribute(account, funds, 1, on=on)
    else:
        received, _ = contribute(account, funds, 1_200_000, on=on)
        assert received.data["year"] == 2026


def test_a_frozen_account_refuses_contributions_before_looking_at_the_quota():
    account, funds = funded_account(1_200_000)
    account.status = FROZEN

    with pytest.raises(AccountFrozen) as refused:
        contribute(account, funds, 1, cid="C2")
    assert refused.value.code == "ACCOUNT_FROZEN"


def test_a_frozen_account_refuses_purchases_and_redemptions():
    account, _ = funded_account(100_000)
    product = listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(DAY))
    account.apply(*_purchased(account, product, 10_000))
    account.status = FROZEN

    with pytest.raises(AccountFrozen):
        account.purchase(product, amount=1, units=1)
    with pytest.raises(AccountFrozen):
        account.redeem(product.product_code, units=1, proceeds=1)


def _purchased(account: FundAccount, product, amount: int) -> tuple[str, dict]:
    event = account.purchase(product, amount=amount, units=amount * 10_000)
    return event.name, event.data


def test_a_purchase_debits_cash_and_records_the_holding_at_cost():
    account, _ = funded_account(100_000)
    product = listed("savings_deposit", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(DAY))

    purchased = account.purchase(product, amount=60_000, units=600_000_000)
    account.apply(purchased.name, purchased.data)

    assert purchased.name == PRODUCT_PURCHASED
    assert purchased.data["cash_after"] == 40_000
    assert account.cash == 40_000
    assert (account.holdings[product.product_code].units, account.holdings[product.product_code].cost) == (600_000_000, 60_000)


def test_a_purchase_above_the_cash_balance_is_refused_and_changes_nothing():
    account, _ = funded_account(100_000)
    product = listed("savings_deposit", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(DAY))

    with pytest.raises(InsufficientFunds) as refused:
        account.purchase(product, amount=100_001, units=1)
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    assert account.cash == 100_000 and account.holdings == {}


def test_an_index_fund_is_not_eligible_before_2024_12_15():
    listing = listed("index_fund", eligible_from=date(2024, 12, 15))

    with pytest.raises(ProductNotEligible) as refused:
        listing.eligible_product(policy_on(date(2024, 12, 14)))
    assert refused.value.code == "PRODUCT_NOT_ELIGIBLE"
    assert listing.eligible_product(policy_on(date(2024, 12, 15))).product_type == "index_fund"


def test_a_product_cannot_be_listed_as_eligible_before_its_type_is():
    from pension_fund_account.domain.products import ProductListing

    with pytest.raises(ProductNotEligible):
        ProductListing("IF9").list(name="x", product_type="index_fund", eligible_from=date(2024, 1, 1), listed_at="t")


def test_a_product_not_on_the_list_is_not_eligible():
    from pension_fund_account.domain.products import ProductListing

    with pytest.raises(ProductNotEligible):
        ProductListing("NOPE").eligible_product(policy_on(DAY))


def test_a_redemption_credits_the_proceeds_to_cash_and_releases_the_cost_pro_rata():
    account, _ = funded_account(100_000)
    product = listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(DAY))
    account.apply(*_purchased(account, product, 90_000))

    redeemed = account.redeem(product.product_code, units=300_000_000, proceeds=35_000)
    account.apply(redeemed.name, redeemed.data)

    assert redeemed.name == PRODUCT_REDEEMED
    assert (redeemed.data["cost_released"], redeemed.data["realised_gain"]) == (30_000, 5_000)
    assert account.cash == 10_000 + 35_000
    assert account.holdings[product.product_code].cost == 60_000


def test_redeeming_more_units_than_held_is_refused():
    account, _ = funded_account(100_000)
    product = listed("public_fund", eligible_from=date(2022, 11, 25)).eligible_product(policy_on(DAY))
    account.apply(*_purchased(account, product, 1_000))

    with pytest.raises(InsufficientFunds):
        account.redeem(product.product_code, units=10_000_001, proceeds=1)
    with pytest.raises(InsufficientFunds):
        account.redeem("NOT-HELD", units=1, proceeds=1)


def test_income_is_credited_to_cash_untaxed():
    account, _ = funded_account(100_000)

    credited = account.credit_income(amount=1_234, kind="interest", product_code=None)
    account.apply(credited.name, credited.data)

    assert credited.name == INCOME_CREDITED
    assert credited.data["taxed"] is False
    assert account.cash == 101_234


def test_cash_and_holdings_always_reconcile_with_the_ledger_after_random_commands():
    rng = random.Random(20251231)
    funds = recognised()
    account = opened_account(funds)
    products = [
        listed(t, eligible_from=date(2024, 12, 15)).eligible_product(policy_on(DAY))
        for t in ("public_fund", "index_fund", "treasury_bond")
    ]
    ledger: list[Event] = []
    for step in range(600):
        choice = rng.choice(["contribute", "purchase", "redeem", "income"])
        try:
            if choice == "contribute":
                event, registered = account.receive_contribution(
                    funds, contribution_id=f"C{step}", amount=rng.randint(1, 300_000), channel="cash", reference="r",
                    on=date(rng.choice([2025, 2026]), 6, 1),
                )
                funds.apply(registered.name, registered.data)
            elif choice == "purchase":
                product = rng.choice(products)
                event = account.purchase(product, amount=rng.randint(1, 200_000), units=rng.randint(1, 10**10))
            elif choice == "redeem":
                code = rng.choice([p.product_code for p in products])
                held = account.holdings.get(code)
                units = rng.randint(1, held.units) if held and rng.random() < 0.9 else rng.randint(1, 10**10)
                event = account.redeem(code, units=units, proceeds=rng.randint(0, 150_000))
            else:
                event = account.credit_income(amount=rng.randint(1, 5_000), kind="dividend", product_code=None)
        except DomainError:
            continue
        account.apply(event.name, event.data)
        ledger.append(event)

        assert account.cash == event.data["cash_after"] >= 0
        inflows = sum(e.data["amount"] for e in ledger if e.name in (CONTRIBUTION_RECEIVED, INCOME_CREDITED))
        gains = sum(e.data["realised_gain"] for e in ledger if e.name == PRODUCT_REDEEMED)
        cost = sum(h.cost for h in account.holdings.values())
        assert account.cash + cost == inflows + gains
        assert all(h.units > 0 and h.cost >= 0 for h in account.holdings.values())

    replayed = FundAccount.from_events(account.fund_account_id, [])
    replayed.apply("FundAccountOpened", {"participant_id": funds.participant_id, "bank_code": "ICBC", "branch_city": "x"})
    for e in ledger:
        replayed.apply(e.name, e.data)
    assert (replayed.cash, replayed.holdings) == (account.cash, account.holdings)
    assert {e.name for e in ledger} == {CONTRIBUTION_RECEIVED, PRODUCT_PURCHASED, PRODUCT_REDEEMED, INCOME_CREDITED}
    assert sum(e.data["amount"] for e in ledger if e.name == CONTRIBUTION_RECEIVED) == sum(funds.contributed_by_year.values())
