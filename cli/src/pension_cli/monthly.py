"""The monthly figures per bank and region, from the ledgers: fund accounts opened, participants
contributing and the amount contributed (fund-account ledger, net of reversals), withdrawals paid
(payout ledger) and tax withheld (tax ledger). The region is the fund account's branch city,
which is also where the tax on its payouts is withheld."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from pension_cli.ledgers import business_day_of, named
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.money import format_fen

AMOUNTS = ("contributed", "withdrawn", "tax_withheld")


@dataclass
class Figures:
    accounts_opened: int = 0
    contributors: set[str] = field(default_factory=set)
    contributed: int = 0
    withdrawals: int = 0
    withdrawn: int = 0
    tax_withheld: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "accounts_opened": self.accounts_opened, "participants_contributing": len(self.contributors),
            "contributed": self.contributed, "withdrawals": self.withdrawals, "withdrawn": self.withdrawn,
            "tax_withheld": self.tax_withheld,
        }


def monthly_figures(ledgers: Mapping[str, Sequence[Envelope]], month: str) -> dict[tuple[str, str], Figures]:
    """``month`` is ``YYYY-MM``; keys are ``(bank_code, region)``."""
    figures: dict[tuple[str, str], Figures] = defaultdict(Figures)
    where: dict[str, tuple[str, str]] = {}

    def in_month(e: Envelope) -> bool:
        return business_day_of(e).isoformat()[:7] == month

    for e in ledgers["fund-account"]:
        name = named(e)
        if name == "FundAccountOpened":
            where[e.data["fund_account_id"]] = (e.data["bank_code"], e.data["branch_city"])
            if in_month(e):
                figures[where[e.data["fund_account_id"]]].accounts_opened += 1
        elif name in ("ContributionReceived", "ContributionReversed") and in_month(e):
            row = figures[where.get(e.data["fund_account_id"], ("?", "?"))]
            if name == "ContributionReceived":
                row.contributors.add(e.data["participant_id"])
                row.contributed += e.data["amount"]
            else:
                row.contributed -= e.data["amount"]
    paid: dict[str, tuple[str, str]] = {}
    for e in ledgers["payout"]:
        name = named(e)
        if name == "PayoutMade":
            paid[e.data["payout_id"]] = (e.data["bank_code"], e.data["withholding_city"])
            if business_date(parse_rfc3339(e.data["paid_at"])).isoformat()[:7] == month:
                row = figures[paid[e.data["payout_id"]]]
                row.withdrawals += 1
                row.withdrawn += e.data["gross"]
        elif name == "PayoutReversed" and in_month(e):
            row = figures[paid.get(e.data["payout_id"], ("?", "?"))]
            row.withdrawals -= 1
            row.withdrawn -= e.data["gross"]
    for e in ledgers["tax"]:
        name = named(e)
        if name in ("WithdrawalTaxWithheld", "WithdrawalTaxWithholdingReversed") and e.data["month"] == month:
            sign = 1 if name == "WithdrawalTaxWithheld" else -1
            figures[(e.data["bank_code"], e.data["withholding_city"])].tax_withheld += sign * e.data["tax"]
    return dict(sorted(figures.items()))


def total(rows: Iterable[Figures]) -> Figures:
    summed = Figures()
    for row in rows:
        summed.accounts_opened += row.accounts_opened
        summed.contributors |= row.contributors
        summed.contributed += row.contributed
        summed.withdrawals += row.withdrawals
        summed.withdrawn += row.withdrawn
        summed.tax_withheld += row.tax_withheld
    return summed


def in_yuan(figures: Figures) -> dict[str, Any]:
    """The figures with their amounts as decimal yuan strings, as they leave the platform."""
    return {k: format_fen(v) if k in AMOUNTS else v for k, v in figures.as_dict().items()}


def monthly_document(figures: Mapping[tuple[str, str], Figures], month: str) -> dict[str, Any]:
    rows = [{"bank_code": bank, "region": region, **in_yuan(row)} for (bank, region), row in figures.items()]
    return {"month": month, "rows": rows, "total": in_yuan(total(figures.values()))}
