"""Payout arithmetic (A-PAY-1..9, A-TAX-8..10): when instalments fall due, how much of the
balance each takes, the 3 % withheld and the net, and the heirs' split. Pure integers (fen)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any, Mapping, Sequence


def due_date(first_due: date, instalment_no: int) -> date:
    """The first instalment falls due on ``first_due``; the next ones on the same day of each
    following month, or the month's last day when it is shorter (INTERFACES.md §5)."""
    months = first_due.month - 1 + (instalment_no - 1)
    year, month = first_due.year + months // 12, months % 12 + 1
    return date(year, month, min(first_due.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Plan:
    """The chosen method and its parameters (A-PAY-1, A-PAY-4, A-PAY-5)."""

    method: str
    months: int | None = None
    monthly_amount: int | None = None
    installments: int | None = None

    def as_data(self) -> dict[str, Any]:
        return {"method": self.method, "months": self.months, "monthly_amount": self.monthly_amount,
                "installments": self.installments}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Plan":
        return cls(data["method"], data.get("months"), data.get("monthly_amount"), data.get("installments"))

    def validate(self) -> None:
        from pension_shared.errors import ValidationFailed

        if self.method == "monthly":
            if (self.months is None) == (self.monthly_amount is None):
                raise ValidationFailed("a monthly withdrawal takes either months or monthly_amount")
            if self.months is not None and not 1 <= self.months <= 1200:
                raise ValidationFailed("months must be between 1 and 1200")
        elif self.method == "installments":
            if self.installments is None or not 1 <= self.installments <= 1200:
                raise ValidationFailed("installments must be between 1 and 1200")
            if self.months is not None or self.monthly_amount is not None:
                raise ValidationFailed("an instalment withdrawal takes only installments")
        elif self.method == "lump_sum":
            if any(v is not None for v in (self.months, self.monthly_amount, self.installments)):
                raise ValidationFailed("a lump sum takes no other parameter")
        else:
            raise ValidationFailed(f"unknown method {self.method!r}")

    def basis(self, instalments_paid_under_plan: int) -> dict[str, Any]:
        """What the next instalment takes of the balance at the time it is paid: a share of it
        (so the last one takes exactly what is left), a fixed amount, or all of it."""
        if self.method == "lump_sum":
            return {"kind": "all"}
        if self.method == "monthly" and self.monthly_amount is not None:
            return {"kind": "fixed", "amount": self.monthly_amount}
        count = self.months if self.method == "monthly" else self.installments
        assert count is not None
        remaining = count - instalments_paid_under_plan
        return {"kind": "all"} if remaining <= 1 else {"kind": "share", "denominator": remaining}


def gross_for(basis: Mapping[str, Any], balance: int) -> int:
    """The gross an instalment takes from a balance of ``balance`` fen."""
    if basis["kind"] == "all":
        return balance
    if basis["kind"] == "fixed":
        return min(int(basis["amount"]), balance)
    return balance // int(basis["denominator"])


@dataclass(frozen=True)
class Payment:
    payment_id: str
    heir_no: int | None
    gross: int
    tax: int
    net: int


def split_among_heirs(payout_id: str, gross: int, shares: Sequence[str], tax_of) -> list[Payment]:  # noqa: ANN001
    """Each heir's share rounded down to the fen; the remainder fen go to the first heir
    (A-INH-1, B-2). Each heir's part is taxed at 3 % on its own gross."""
    return _split(payout_id, gross, {i + 1: Fraction(s) for i, s in enumerate(shares)}, tax_of)


def split_owed(payout_id: str, gross: int, owed: Mapping[int, int], tax_of) -> list[Payment]:  # noqa: ANN001
    """A retry of an inheritance: what came back from the heirs' failed payments goes to those
    heirs only, each their own part (the whole of it when the gross is all that is owed)."""
    total = sum(owed.values())
    return _split(payout_id, gross, {heir_no: Fraction(amount, total) for heir_no, amount in owed.items()}, tax_of)


def _split(payout_id: str, gross: int, weights: Mapping[int, Fraction], tax_of) -> list[Payment]:  # noqa: ANN001
    parts = {heir_no: int(gross * weight) for heir_no, weight in weights.items()}
    parts[next(iter(parts))] += gross - sum(parts.values())
    return [
        Payment(f"{payout_id}-H{heir_no}", heir_no, part, tax_of(part), part - tax_of(part))
        for heir_no, part in parts.items()
    ]
