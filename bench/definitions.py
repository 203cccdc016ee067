"""Each service's definition (projections, upcasters), as its processes compose it."""

from pension_account.bootstrap import DEFINITION as ACCOUNT
from pension_fund_account.bootstrap import DEFINITION as FUND_ACCOUNT
from pension_payout.bootstrap import DEFINITION as PAYOUT
from pension_tax.bootstrap import DEFINITION as TAX

DEFINITIONS = {"account": ACCOUNT, "fund-account": FUND_ACCOUNT, "tax": TAX, "payout": PAYOUT}
