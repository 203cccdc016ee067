"""The commands of the closed loop: what a bank (or an operator) asks for, already validated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class OpenFundAccount:
    participant_id: str
    bank_code: str
    branch_city: str


@dataclass(frozen=True)
class Contribute:
    fund_account_id: str
    bank_code: str
    amount: int
    channel: str
    reference: str


@dataclass(frozen=True)
class PurchaseProduct:
    fund_account_id: str
    bank_code: str
    product_code: str
    amount: int
    units: int | None = None
    """Micro-units; by default one unit a yuan."""


@dataclass(frozen=True)
class RedeemProduct:
    fund_account_id: str
    bank_code: str
    product_code: str
    units: int
    proceeds: int


@dataclass(frozen=True)
class CreditIncome:
    fund_account_id: str
    bank_code: str
    amount: int
    kind: str
    product_code: str | None = None


@dataclass(frozen=True)
class ListProduct:
    product_code: str
    name: str
    product_type: str
    eligible_from: date


@dataclass(frozen=True)
class RequestBankChange:
    fund_account_id: str
    bank_code: str
    """The bank holding the account, which the participant asks (A-CHG-1)."""
    new_bank_code: str
    new_branch_city: str
