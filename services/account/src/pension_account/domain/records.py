"""What the information platform records of each participant from the banks' reports
(A-INF-2, A-PACC-2): the bound fund account, contributions per calendar year, investments."""

from __future__ import annotations

FUND_ACCOUNT_BOUND = "FundAccountBound"
CONTRIBUTION_RECORDED = "ContributionRecorded"
INVESTMENT_RECORDED = "InvestmentRecorded"

INVESTMENT_KINDS = {"ProductPurchased": "purchase", "ProductRedeemed": "redemption", "IncomeCredited": "income"}
