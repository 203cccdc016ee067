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

    records = eventually(lambda: (r := httpx.get(f"{base}/v1/participants/{participant_id}/records?year=2025",
                                                 headers=BANK).json())["items"][1:] and r)
    kinds = [(item["kind"], item["amount"]) for item in records["items"]]
    assert kinds == [("contribution", "5000.00"), ("purchase", "2000.00")]
    assert all(item["source_event"]["type"].startswith("cn.pension.fund-account.") for item in records["items"])

    other_bank = httpx.get(f"{base}/v1/participants/{participant_id}", headers=auth("dev-bank-BOC"))
    assert other_bank.status_code == 404 and other_bank.json()["code"] == "PARTICIPANT_NOT_FOUND"
