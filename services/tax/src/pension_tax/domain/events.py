"""The tax service's events, all on the taxpayer's stream ``taxpayer-{participant_id}``, published on
pension.tax for the tax bureau (the one topic carrying the taxpayer's ID number and name in clear).
Money in integer fen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

TAXPAYER_REGISTERED = "TaxpayerRegistered"
FUND_ACCOUNT_NOTED = "FundAccountNoted"
EVENT_AWAITING_TAXPAYER = "EventAwaitingTaxpayer"
DEDUCTION_VOUCHER_ISSUED = "DeductionVoucherIssued"
DEDUCTION_VOUCHER_VOIDED = "DeductionVoucherVoided"
WITHDRAWAL_TAX_WITHHELD = "WithdrawalTaxWithheld"
WITHDRAWAL_TAX_WITHHOLDING_REVERSED = "WithdrawalTaxWithholdingReversed"
ANNUAL_TAX_STATEMENT_ISSUED = "AnnualTaxStatementIssued"

EVENT_NAMES: tuple[str, ...] = (
    TAXPAYER_REGISTERED, FUND_ACCOUNT_NOTED, EVENT_AWAITING_TAXPAYER, DEDUCTION_VOUCHER_ISSUED,
    DEDUCTION_VOUCHER_VOIDED, WITHDRAWAL_TAX_WITHHELD, WITHDRAWAL_TAX_WITHHOLDING_REVERSED,
    ANNUAL_TAX_STATEMENT_ISSUED,
)


@dataclass(frozen=True)
class Event:
    """A decision of the taxpayer aggregate, before it is recorded."""

    name: str
    data: Mapping[str, Any]


def taxpayer_stream(participant_id: str) -> str:
    return f"taxpayer-{participant_id}"
