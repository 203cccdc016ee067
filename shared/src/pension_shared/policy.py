"""The effective-dated policy table of RULES.md §12: the published regulation parameters every
service applies as they stood on the business date (a public contract of the platform, like the
event types). Nothing else hard-codes a cap or a product date; a change of regulation is a new
period here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Mapping

from pension_shared.money import percent_half_up

PILOT_START = date(2022, 11, 25)
NATIONWIDE_START = date(2024, 12, 15)
TAX_TREATMENT_START = date(2022, 1, 1)
"""The tax treatment of personal pensions applies from 2022-01-01 (P3, retroactive for the pilot)."""


@dataclass(frozen=True)
class Period:
    value: int
    valid_from: date
    valid_to: date | None = None
    """Inclusive; ``None`` is open-ended."""

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


ANNUAL_CONTRIBUTION_CAP_FEN: tuple[Period, ...] = (Period(1_200_000, PILOT_START),)
"""A-CONT-1/2: CNY 12,000 a calendar year, adjustable by MOHRSS and MOF (a new period)."""

ANNUAL_DEDUCTION_LIMIT_FEN: tuple[Period, ...] = (Period(1_200_000, TAX_TREATMENT_START),)
"""A-TAX-1: contributions are deductible from comprehensive or business income up to CNY 12,000
a calendar year (C-TAX-1: the date the limit applied nationwide is uncertain; one period here)."""

WITHDRAWAL_TAX_RATE_BASIS_POINTS: tuple[Period, ...] = (Period(300, TAX_TREATMENT_START),)
"""A-TAX-8..10: withdrawals are taxed separately at 3 % of the gross amount, whatever the method."""

BASIS_POINTS = 10_000

PRODUCT_TYPES_ELIGIBLE_FROM: Mapping[str, date] = {
    "savings_deposit": PILOT_START,  # A-INV-1
    "wealth_management": PILOT_START,
    "pension_insurance": PILOT_START,
    "public_fund": PILOT_START,
    "treasury_bond": NATIONWIDE_START,  # A-INV-2
    "pension_savings": NATIONWIDE_START,
    "index_fund": NATIONWIDE_START,
}

PRODUCT_TYPES: tuple[str, ...] = tuple(PRODUCT_TYPES_ELIGIBLE_FROM)


@dataclass(frozen=True)
class Policy:
    """The parameters in force on one business date."""

    on: date
    annual_contribution_cap: int
    """In fen; 0 before the pilot started, so no contribution is possible then."""
    eligible_product_types: frozenset[str]
    annual_deduction_limit: int = 0
    """In fen: the most of a calendar year's contributions deductible from taxable income."""
    withdrawal_tax_rate_bp: int = 0
    """The withdrawal tax rate in basis points (300 = 3 %)."""

    def product_type_eligible(self, product_type: str) -> bool:
        return product_type in self.eligible_product_types

    def withdrawal_tax(self, gross: int) -> int:
        """The tax withheld on a payout of ``gross`` fen, rounded half up to the fen (C-TAX-2)."""
        return percent_half_up(gross, self.withdrawal_tax_rate_bp, BASIS_POINTS)


def policy_on(day: date) -> Policy:
    types = frozenset(t for t, since in PRODUCT_TYPES_ELIGIBLE_FROM.items() if since <= day)
    return Policy(
        on=day, annual_contribution_cap=_in_force(ANNUAL_CONTRIBUTION_CAP_FEN, day), eligible_product_types=types,
        annual_deduction_limit=_in_force(ANNUAL_DEDUCTION_LIMIT_FEN, day),
        withdrawal_tax_rate_bp=_in_force(WITHDRAWAL_TAX_RATE_BASIS_POINTS, day),
    )


def deduction_limit_for_year(year: int) -> int:
    """The deduction limit of a tax year: the one in force on its last day (the limit is annual)."""
    return policy_on(date(year, 12, 31)).annual_deduction_limit


def _in_force(periods: tuple[Period, ...], day: date) -> int:
    return next((p.value for p in periods if p.covers(day)), 0)


def product_type_eligible_from(product_type: str) -> date | None:
    """The first day a product type may be bought with fund-account money; None if never."""
    return PRODUCT_TYPES_ELIGIBLE_FROM.get(product_type)


# -- Withdrawal (RULES.md §4.8, §4.9, §12) ---------------------------------------------------

NEW_WITHDRAWAL_RULES = date(2025, 9, 1)
"""人社部发〔2025〕39号 (P9) in force: three more conditions, agency verification, changeable method."""

WITHDRAWAL_CONDITIONS_IN_FORCE_FROM: Mapping[str, date] = {
    "retirement_age": PILOT_START,  # A-WD-1
    "incapacity": PILOT_START,  # A-WD-2
    "emigration": PILOT_START,  # A-WD-3
    "medical_expenses": NEW_WITHDRAWAL_RULES,  # A-WD-4, A-WD-7
    "unemployment": NEW_WITHDRAWAL_RULES,  # A-WD-5
    "subsistence_allowance": NEW_WITHDRAWAL_RULES,  # A-WD-6
}

WITHDRAWAL_CONDITIONS: tuple[str, ...] = tuple(WITHDRAWAL_CONDITIONS_IN_FORCE_FROM)


def withdrawal_condition_in_force(condition: str, day: date) -> bool:
    since = WITHDRAWAL_CONDITIONS_IN_FORCE_FROM.get(condition)
    return since is not None and since <= day


def withdrawal_method_changeable(day: date) -> bool:
    """A-PAY-2 (locked once chosen) until 2025-08-31; A-PAY-3 (changeable as needed) from 2025-09-01."""
    return day >= NEW_WITHDRAWAL_RULES
