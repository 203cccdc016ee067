from datetime import date

from pension_shared.policy import policy_on, product_type_eligible_from


def test_the_annual_cap_is_twelve_thousand_yuan_from_the_pilot_start():
    assert policy_on(date(2022, 11, 25)).annual_contribution_cap == 1_200_000
    assert policy_on(date(2030, 6, 1)).annual_contribution_cap == 1_200_000


def test_no_contribution_is_possible_before_the_pilot_started():
    assert policy_on(date(2022, 11, 24)).annual_contribution_cap == 0
    assert policy_on(date(2022, 11, 24)).eligible_product_types == frozenset()


def test_the_first_four_product_types_are_eligible_from_the_pilot_start():
    policy = policy_on(date(2023, 3, 1))

    assert policy.eligible_product_types == {"savings_deposit", "wealth_management", "pension_insurance", "public_fund"}


def test_treasury_bonds_pension_savings_and_index_funds_join_on_2024_12_15():
    assert not policy_on(date(2024, 12, 14)).product_type_eligible("index_fund")
    on_the_day = policy_on(date(2024, 12, 15))
    assert {"treasury_bond", "pension_savings", "index_fund"} <= on_the_day.eligible_product_types
    assert len(on_the_day.eligible_product_types) == 7


def test_a_product_type_knows_its_first_eligible_day():
    assert product_type_eligible_from("public_fund") == date(2022, 11, 25)
    assert product_type_eligible_from("pension_savings") == date(2024, 12, 15)
    assert product_type_eligible_from("crypto") is None
