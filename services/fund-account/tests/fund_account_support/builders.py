"""Given-state builders for the aggregates, with random ids."""

from __future__ import annotations

import uuid
from datetime import date

from pension_fund_account.domain.events import (
    CONTRIBUTION_QUOTA_REGISTERED, FUND_ACCOUNT_ASSIGNED, FUND_ACCOUNT_OPENED, PARTICIPANT_RECOGNISED, PRODUCT_LISTED,
)
from pension_fund_account.domain.fund_account import FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_fund_account.domain.products import ProductListing

NOW = "2025-08-15T09:00:00.000000+08:00"


def random_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


def recognised(participant_id: str | None = None, *, contributed: dict[int, int] | None = None) -> ParticipantFunds:
    participant_id = participant_id or random_id("P")
    events = [(PARTICIPANT_RECOGNISED, {"participant_id": participant_id})]
    for year, total in (contributed or {}).items():
        events.append((CONTRIBUTION_QUOTA_REGISTERED, {"year": year, "contributed_this_year": total}))
    return ParticipantFunds.from_events(participant_id, events)


def opened_account(funds: ParticipantFunds, *, bank_code: str = "ICBC") -> FundAccount:
    fund_account_id = random_id("FA")
    funds.apply(FUND_ACCOUNT_ASSIGNED, {"fund_account_id": fund_account_id, "bank_code": bank_code})
    return FundAccount.from_events(fund_account_id, [(FUND_ACCOUNT_OPENED, {
        "fund_account_id": fund_account_id, "participant_id": funds.participant_id, "bank_code": bank_code,
        "branch_city": "Zhengzhou", "opened_at": NOW,
    })])


def listed(product_type: str, *, eligible_from: date, code: str | None = None) -> ProductListing:
    code = code or random_id("PR")
    return ProductListing.from_events(code, [(PRODUCT_LISTED, {
        "product_code": code, "name": "a product", "product_type": product_type,
        "eligible_from": eligible_from.isoformat(), "listed_at": NOW,
    })])
