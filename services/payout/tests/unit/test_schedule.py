from datetime import date

import pytest

from pension_payout.domain.schedule import Plan, due_date, gross_for, split_among_heirs, split_owed
from pension_shared.errors import ValidationFailed
from pension_shared.policy import policy_on

TAX = policy_on(date(2025, 10, 1)).withdrawal_tax


def test_the_tax_is_three_percent_of_the_gross_half_up_to_the_fen():
    assert TAX(1_234_567) == 37_037
    assert TAX(120_000) == 3_600
    assert TAX(50) == 2  # 1.5 fen rounds up
    assert TAX(49) == 1  # 1.47 fen rounds down


def test_a_lump_sum_of_12345_67_withholds_370_37_and_pays_11975_30():
    gross = gross_for(Plan("lump_sum").basis(0), 1_234_567)
    assert (gross, TAX(gross), gross - TAX(gross)) == (1_234_567, 37_037, 1_197_530)


def test_ten_monthly_payouts_of_12000_are_each_1200_gross_36_tax_1164_net():
    plan, balance, payouts = Plan("monthly", months=10), 1_200_000, []
    for paid in range(10):
        gross = gross_for(plan.basis(paid), balance)
        balance -= gross
        payouts.append((gross, TAX(gross), gross - TAX(gross)))
    assert payouts == [(120_000, 3_600, 116_400)] * 10
    assert balance == 0


def test_the_last_instalment_takes_exactly_what_is_left():
    plan, balance, grosses = Plan("installments", installments=3), 100_001, []
    for paid in range(3):
        gross = gross_for(plan.basis(paid), balance)
        balance -= gross
        grosses.append(gross)
    assert grosses == [33_333, 33_334, 33_334] and balance == 0


def test_a_fixed_monthly_amount_is_paid_until_the_balance_is_exhausted():
    plan = Plan("monthly", monthly_amount=500_000)
    assert gross_for(plan.basis(0), 1_200_000) == 500_000
    assert gross_for(plan.basis(2), 200_000) == 200_000


@pytest.mark.parametrize(
    "first, number, expected",
    [
        (date(2025, 1, 31), 2, date(2025, 2, 28)),
        (date(2024, 1, 31), 2, date(2024, 2, 29)),
        (date(2025, 1, 31), 3, date(2025, 3, 31)),
        (date(2025, 11, 15), 3, date(2026, 1, 15)),
        (date(2025, 8, 15), 1, date(2025, 8, 15)),
    ],
)
def test_instalments_fall_due_on_the_same_day_of_each_month_or_its_last_day(first, number, expected):
    assert due_date(first, number) == expected


def test_an_inheritance_split_three_ways_leaves_no_fen_behind_and_the_remainder_goes_to_the_first_heir():
    payments = split_among_heirs("W-1", 1_000_001, ["0.333333", "0.333333", "0.333334"], TAX)
    assert [p.gross for p in payments] == [333_334, 333_333, 333_334]
    assert sum(p.gross for p in payments) == 1_000_001
    assert all(p.tax == TAX(p.gross) and p.net == p.gross - p.tax for p in payments)
    assert [p.payment_id for p in payments] == ["W-1-H1", "W-1-H2", "W-1-H3"]


@pytest.mark.parametrize(
    "plan",
    [Plan("monthly"), Plan("monthly", months=3, monthly_amount=100), Plan("installments"), Plan("lump_sum", months=2),
     Plan("weekly"), Plan("monthly", months=0)],
)
def test_incomplete_or_contradictory_plans_are_refused(plan):
    with pytest.raises(ValidationFailed):
        plan.validate()


def test_a_retry_short_of_what_is_owed_is_split_by_what_each_heir_is_owed():
    payments = split_owed("W1-2", 10_000, {2: 30_000, 3: 10_000}, lambda gross: gross * 3 // 100)
    assert [(p.payment_id, p.heir_no, p.gross) for p in payments] == [("W1-2-H2", 2, 7_500), ("W1-2-H3", 3, 2_500)]
