"""The effective-dated policy table of RULES.md §12: the published regulation parameters every
service applies as they stood on the business date (a public contract of the platform, like the
event types). Nothing else hard-codes a cap or a product date; a change of regulation is a new
period here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Mapping

PILOT_START = date(2022, 11, 25)
NATIONWIDE_START = date(2024, 12, 15)


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

    def product_type_eligible(self, product_type: str) -> bool:
        return product_type in self.eligible_product_types


def policy_on(day: date) -> Policy:
    cap = next((p.value for p in ANNUAL_CONTRIBUTION_CAP_FEN if p.covers(day)), 0)
    types = frozenset(t for t, since in PRODUCT_TYPES_ELIGIBLE_FROM.items() if since <= day)
    return Policy(on=day, annual_contribution_cap=cap, eligible_product_types=types)


def product_type_eligible_from(product_type: str) -> date | None:
    """The first day a product type may be bought with fund-account money; None if never."""
    return PRODUCT_TYPES_ELIGIBLE_FROM.get(product_type)
