"""What the information platform records of each participant (A-INF-2, A-PACC-2): from the
banks' reports the bound fund account, contributions per calendar year, investments and
withdrawals; from the tax side the deductions (vouchers) and the tax withheld."""

from __future__ import annotations

FUND_ACCOUNT_BOUND = "FundAccountBound"
CONTRIBUTION_RECORDED = "ContributionRecorded"
INVESTMENT_RECORDED = "InvestmentRecorded"

INVESTMENT_KINDS = {"ProductPurchased": "purchase", "ProductRedeemed": "redemption", "IncomeCredited": "income"}
WITHDRAWAL_RECORDED = "WithdrawalRecorded"
DEDUCTION_RECORDED = "DeductionRecorded"
TAX_RECORDED = "TaxRecorded"
