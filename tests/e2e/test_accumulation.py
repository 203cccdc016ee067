"""The accumulation phase as a bank drives it, across the account and fund-account services,
through the HTTP API of `pension run`."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_embedded_platform import RunningPlatform
from tests.support.requests import auth, eventually, registration

pytestmark = pytest.mark.e2e

BANK = auth("dev-bank-ICBC")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    platform = RunningPlatform(tmp_path_factory.mktemp("accumulation"))
    platform.start()
    yield platform
    platform.stop()


def _post(base: str, path: str, body: dict, headers: dict = BANK) -> httpx.Response:
    return httpx.post(base + path, json=body, headers=headers, timeout=10)


def test_a_bank_opens_contributes_invests_and_the_platform_records_it(running):
    base = running.base
    httpx.put(f"{base}/v1/ops/clock", json={"now": "2025-03-10T10:00:00+08:00"}, headers=auth("dev-operator"))
    participant_id = _post(base, "/v1/participants", registration()).json()["participant_id"]
    eventually(lambda: httpx.get(f"{base}/v1/ops/fund-account/participants/{participant_id}",
                                 headers=auth("dev-operator")).status_code == 200)

    opened = _post(base, "/v1/fund-accounts", {"participant_id": participant_id, "branch_city": "410100"})
    assert opened.status_code == 201, opened.text
    fund_account_id = opened.json()["fund_account_id"]
    assert _post(base, f"/v1/fund-accounts/{fund_account_id}/contributions",
                 {"amount": "5000.00", "channel": "bank_transfer", "reference": "r1"}).status_code == 201
    product = next(p for p in httpx.get(f"{base}/v1/products", headers=BANK).json()["items"]
                   if p["product_type"] == "savings_deposit")
    assert _post(base, f"/v1/fund-accounts/{fund_account_id}/purchases",
                 {"product_code": product["product_code"], "amount": "2000.00"}).status_code == 201
    over = _post(base, f"/v1/fund-accounts/{fund_account_id}/contributions",
                 {"amount": "7000.01", "channel": "cash", "reference": "r2"})
    assert over.status_code == 422 and over.json()["code"] == "CONTRIBUTION_CAP_EXCEEDED"
    assert over.json()["remaining_quota"] == "7000.00"

    account = httpx.get(f"{base}/v1/fund-accounts/{fund_account_id}", headers=BANK).json()
    assert account["cash_balance"] == "3000.00" and account["contributed_this_year"] == "5000.00"

    def platform_view() -> dict | None:
        view = httpx.get(f"{base}/v1/participants/{participant_id}", headers=BANK).json()
        return view if view.get("contributed_this_year") == "5000.00" else None

    view = eventually(platform_view)
    assert view["fund_account"] == {"bank_code": "ICBC", "fund_account_id": fund_account_id}
    assert view["year"] == 2025 and view["remaining_quota"] == "7000.00"

    def records() -> list | None:
        items = httpx.get(f"{base}/v1/participants/{participant_id}/records?year=2025", headers=BANK).json()["items"]
        return items if len(items) == 3 else None

    items = eventually(records)
    banks = [(i["kind"], i["amount"]) for i in items if i["source_event"]["type"].startswith("cn.pension.fund-account.")]
    assert banks == [("contribution", "5000.00"), ("purchase", "2000.00")]
    deductions = [(i["kind"], i["amount"]) for i in items if i["source_event"]["type"].startswith("cn.pension.tax.")]
    assert deductions == [("deduction", "5000.00")], "the tax service's voucher, recorded on the platform"

    other_bank = httpx.get(f"{base}/v1/participants/{participant_id}", headers=auth("dev-bank-BOC"))
    assert other_bank.status_code == 404 and other_bank.json()["code"] == "PARTICIPANT_NOT_FOUND"


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    return response.json()


def _book_value(account: dict) -> int:
    """Cash plus the cost of the holdings, in fen."""
    return _fen(account["cash_balance"]) + sum(_fen(h["cost"]) for h in account["holdings"])


def _fen(yuan: str) -> int:
    whole, decimals = yuan.split(".")
    return int(whole) * 100 + int(decimals)


def test_a_year_of_accumulation_with_a_bank_change_keeps_the_money_and_the_quota(running):
    """Register, open, contribute, buy, redeem, receive interest at ICBC; change to CCB the next
    business day; CCB holds everything and may contribute exactly what is left of the year's cap."""
    base, operator, new_bank = running.base, auth("dev-operator"), auth("dev-bank-CCB")
    httpx.put(f"{base}/v1/ops/clock", json={"now": "2025-06-02T10:00:00+08:00"}, headers=operator)
    participant_id = _post(base, "/v1/participants", registration()).json()["participant_id"]
    eventually(lambda: httpx.get(f"{base}/v1/ops/fund-account/participants/{participant_id}",
                                 headers=operator).status_code == 200)
    old = _post(base, "/v1/fund-accounts", {"participant_id": participant_id, "branch_city": "410100"}).json()["fund_account_id"]
    account_path = f"/v1/fund-accounts/{old}"
    assert _post(base, f"{account_path}/contributions",
                 {"amount": "4000.00", "channel": "bank_transfer", "reference": "june"}).status_code == 201
    assert _post(base, f"{account_path}/purchases", {"product_code": "PF0001", "amount": "2000.00"}).status_code == 201
    redeemed = _post(base, f"{account_path}/redemptions", {"product_code": "PF0001", "units": "500", "proceeds": "510.00"})
    assert redeemed.status_code == 201 and redeemed.json()["realised_gain"] == "10.00"
    assert _post(base, f"{account_path}/income", {"amount": "12.34", "kind": "interest"}).status_code == 201
    _problem(_post(base, f"{account_path}/bank-change", {"new_bank_code": "CCB", "new_branch_city": "110000"}),
             409, "BANK_CHANGE_NOT_ALLOWED")
    _problem(_post(base, f"{account_path}/bank-change", {"new_bank_code": "ccb!", "new_branch_city": "110000"}),
             422, "VALIDATION_FAILED")
    before = httpx.get(base + account_path, headers=BANK).json()
    assert (before["cash_balance"], _book_value(before)) == ("2522.34", 402_234)

    moved = httpx.put(f"{base}/v1/ops/clock", json={"now": "2025-06-03T09:30:00+08:00"}, headers=operator)
    assert moved.status_code == 200
    _problem(_post(base, f"{account_path}/bank-change", {"new_bank_code": "ICBC", "new_branch_city": "110000"}),
             409, "BANK_CHANGE_NOT_ALLOWED")
    requested = _post(base, f"{account_path}/bank-change", {"new_bank_code": "CCB", "new_branch_city": "110000"})
    assert requested.status_code == 202, requested.text
    bank_change_id = requested.json()["bank_change_id"]
    # The saga may already have closed the old account by now (it runs in milliseconds); either
    # way the old account takes no more money. The frozen window itself is tested deterministically
    # in services/fund-account/tests/integration/test_bank_change.py.
    late = _post(base, f"{account_path}/contributions", {"amount": "1.00", "channel": "cash", "reference": "x"})
    assert late.status_code == 409 and late.json()["code"] in ("ACCOUNT_FROZEN", "CONFLICT"), late.text

    def completed() -> dict | None:
        change = httpx.get(f"{base}/v1/fund-accounts/bank-changes/{bank_change_id}", headers=new_bank).json()
        return change if change.get("status") == "completed" else None

    new = eventually(completed)["new_fund_account_id"]
    after = httpx.get(f"{base}/v1/fund-accounts/{new}", headers=new_bank).json()
    assert (after["status"], after["bank_code"], after["cash_balance"]) == ("active", "CCB", "2522.34")
    assert [(h["product_code"], h["units"], h["cost"]) for h in after["holdings"]] == [("PF0001", "1500.000000", "1500.00")]
    assert _book_value(after) == _book_value(before)
    closed = httpx.get(base + account_path, headers=BANK).json()
    assert (closed["status"], closed["cash_balance"], closed["holdings"]) == ("closed", "0.00", [])
    _problem(httpx.get(f"{base}/v1/fund-accounts/{new}", headers=BANK), 404, "FUND_ACCOUNT_NOT_FOUND")
    assert after["remaining_quota"] == "8000.00"

    over = _problem(_post(base, f"/v1/fund-accounts/{new}/contributions",
                          {"amount": "8000.01", "channel": "cash", "reference": "ccb-1"}, new_bank),
                    422, "CONTRIBUTION_CAP_EXCEEDED")
    assert over["remaining_quota"] == "8000.00"
    assert _post(base, f"/v1/fund-accounts/{new}/contributions",
                 {"amount": "8000.00", "channel": "payment_institution", "reference": "ccb-2"}, new_bank).status_code == 201
    full = _problem(_post(base, f"/v1/fund-accounts/{new}/contributions",
                          {"amount": "0.01", "channel": "cash", "reference": "ccb-3"}, new_bank),
                    422, "CONTRIBUTION_CAP_EXCEEDED")
    assert full["remaining_quota"] == "0.00"

    def platform_view() -> dict | None:
        response = httpx.get(f"{base}/v1/participants/{participant_id}", headers=new_bank)
        view = response.json() if response.status_code == 200 else {}
        return view if view.get("contributed_this_year") == "12000.00" else None

    view = eventually(platform_view)
    assert view["fund_account"] == {"bank_code": "CCB", "fund_account_id": new}
    assert view["remaining_quota"] == "0.00"
    _problem(httpx.get(f"{base}/v1/participants/{participant_id}", headers=BANK), 404, "PARTICIPANT_NOT_FOUND")
    records = httpx.get(f"{base}/v1/participants/{participant_id}/records?year=2025", headers=new_bank).json()
    assert [(r["kind"], r["amount"], r["fund_account_id"]) for r in records["items"] if r["kind"] != "deduction"] == [
        ("contribution", "4000.00", old), ("purchase", "2000.00", old), ("redemption", "510.00", old),
        ("income", "12.34", old), ("bank_change", "4022.34", new), ("contribution", "8000.00", new),
    ]
