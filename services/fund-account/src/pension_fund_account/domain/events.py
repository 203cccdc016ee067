"""The fund-account service's events (past tense; money in integer fen, units in micro-units)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# On the fund account's stream `fund-account-{fund_account_id}`.
FUND_ACCOUNT_OPENED = "FundAccountOpened"
CONTRIBUTION_RECEIVED = "ContributionReceived"
PRODUCT_PURCHASED = "ProductPurchased"
PRODUCT_REDEEMED = "ProductRedeemed"
INCOME_CREDITED = "IncomeCredited"
FUND_ACCOUNT_FROZEN = "FundAccountFrozen"
FUND_ACCOUNT_UNFROZEN = "FundAccountUnfrozen"
CASH_TRANSFERRED_OUT = "CashTransferredOut"
HOLDING_TRANSFERRED_OUT = "HoldingTransferredOut"
TRANSFER_IN_RECEIVED = "TransferInReceived"
HOLDING_TRANSFERRED_IN = "HoldingTransferredIn"
FUND_ACCOUNT_CLOSED = "FundAccountClosed"

# On the participant's stream `participant-{participant_id}`.
PARTICIPANT_RECOGNISED = "ParticipantRecognised"
FUND_ACCOUNT_ASSIGNED = "FundAccountAssigned"
FUND_ACCOUNT_UNASSIGNED = "FundAccountUnassigned"
CONTRIBUTION_QUOTA_REGISTERED = "ContributionQuotaRegistered"
BANK_CHANGE_REQUESTED = "BankChangeRequested"
BANK_CHANGE_COMPLETED = "BankChangeCompleted"
BANK_CHANGE_ABORTED = "BankChangeAborted"

# On a product's stream `product-{product_code}`.
PRODUCT_LISTED = "ProductListed"

# Receiving status (A-PACC-5, A-CONT-8): on the participant's stream and on the account's.
RECEIVING_STATUS_RECORDED = "ReceivingStatusRecorded"
FUND_ACCOUNT_RECEIVING = "FundAccountReceiving"

# Death (A-INH-1), on the participant's stream: contributions end; the payout service settles the
# account by inheritance.
DEATH_RECORDED = "DeathRecorded"

# Payouts (see domain/payouts.py), on the fund account's stream.
PAYOUT_DEBITED = "PayoutDebited"
PAYOUT_DEBIT_REFUSED = "PayoutDebitRefused"
PAYOUT_REFUNDED = "PayoutRefunded"

MONEY_MOVED: Mapping[str, tuple[str, ...]] = {
    CONTRIBUTION_RECEIVED: ("amount",),
    PRODUCT_PURCHASED: ("amount",),
    PRODUCT_REDEEMED: ("proceeds", "cost_released", "realised_gain"),
    INCOME_CREDITED: ("amount",),
    CASH_TRANSFERRED_OUT: ("amount",),
    TRANSFER_IN_RECEIVED: ("amount",),
    HOLDING_TRANSFERRED_OUT: ("cost",),
    HOLDING_TRANSFERRED_IN: ("cost",),
    PAYOUT_DEBITED: ("gross",),
    PAYOUT_REFUNDED: ("amount",),
}
"""The amounts (fen) each ledger entry moved; every one of them also carries ``cash_after``.
A holding moved in kind between banks moves its cost, not cash (A-CHG-3)."""


@dataclass(frozen=True)
class Event:
    """A decision of an aggregate, before it is recorded."""

    name: str
    data: Mapping[str, Any]


def fund_account_stream(fund_account_id: str) -> str:
    return f"fund-account-{fund_account_id}"


def participant_stream(participant_id: str) -> str:
    return f"participant-{participant_id}"


def product_stream(product_code: str) -> str:
    return f"product-{product_code}"
