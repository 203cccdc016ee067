"""Take docs/console.png: the operators' console in Debian's Chromium (headless), on a fresh
`pension run` with some months of activity made through the API.

    uv run python scripts/console-screenshot.py [--out docs/console.png]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.test_embedded_platform import RunningPlatform  # noqa: E402
from tests.support.browser import chromium  # noqa: E402
from tests.support.requests import auth, eventually, registration  # noqa: E402

OPERATOR = auth("dev-operator")
BANKS = (("ICBC", "410100"), ("CCB", "320100"), ("BOC", "110100"))


def _ok(response: httpx.Response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


class Activity:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)

    def at(self, now: str) -> None:
        _ok(self.http.put("/v1/ops/clock", json={"now": now}, headers=OPERATOR), 200)

    def open(self, bank: str, region: str) -> tuple[str, str]:
        body = registration(region=region, bank=bank)
        participant_id = _ok(self.http.post("/v1/participants", json=body, headers=auth(f"dev-bank-{bank}")))["participant_id"]
        eventually(lambda: self.http.get(f"/v1/ops/fund-account/participants/{participant_id}", headers=OPERATOR).status_code == 200)
        fund_account_id = _ok(self.http.post("/v1/fund-accounts", json={"participant_id": participant_id, "branch_city": region},
                                             headers=auth(f"dev-bank-{bank}")))["fund_account_id"]
        return participant_id, fund_account_id

    def contribute(self, bank: str, fund_account_id: str, amount: str) -> None:
        """Within the year's cap: an amount over what is left is refused, and left out."""
        response = self.http.post(f"/v1/fund-accounts/{fund_account_id}/contributions", headers=auth(f"dev-bank-{bank}"),
                                  json={"amount": amount, "channel": "bank_transfer", "reference": uuid.uuid4().hex})
        if response.status_code == 422 and response.json()["code"] == "CONTRIBUTION_CAP_EXCEEDED":
            return
        _ok(response)

    def retire_and_withdraw(self, bank: str, region: str, participant_id: str) -> None:
        headers = auth(f"dev-bank-{bank}")
        eventually(lambda: self.http.get(f"/v1/participants/{participant_id}", headers=headers).json().get("fund_account"))
        application = _ok(self.http.post("/v1/withdrawal-applications", headers=headers, json={
            "participant_id": participant_id, "condition": "retirement_age", "evidence": ["certificate"]}))
        _ok(self.http.post(f"/v1/withdrawal-applications/{application['application_id']}/decision",
                           json={"decision": "approved"}, headers=auth(f"dev-agency-{region}")), 200)
        eventually(lambda: self.http.get(f"/v1/participants/{participant_id}", headers=headers).json()["status"] == "receiving")
        withdrawal = eventually(lambda: (r := self.http.post("/v1/withdrawals", headers=headers, json={
            "participant_id": participant_id, "method": "lump_sum"})).status_code == 201 and r.json())
        eventually(lambda: any(p["status"] == "paid" for p in self.http.get(
            f"/v1/withdrawals/{withdrawal['withdrawal_id']}", headers=headers).json()["payouts"]), timeout_s=60)


def make_activity(base: str) -> None:
    random.seed(6)
    activity = Activity(base)
    accounts: list[tuple[str, str, str, str]] = []
    for month in range(3, 11):
        activity.at(f"2025-{month:02d}-10T10:00:00+08:00")
        for bank, region in random.sample(BANKS, k=random.randint(1, 2)):
            participant_id, fund_account_id = activity.open(bank, region)
            accounts.append((bank, region, participant_id, fund_account_id))
        for bank, _, _, fund_account_id in random.sample(accounts, k=min(len(accounts), random.randint(2, 4))):
            activity.contribute(bank, fund_account_id, f"{random.randint(5, 25) * 100}.00")
        if month == 9:
            bank, region, participant_id, _ = accounts[0]
            activity.retire_and_withdraw(bank, region, participant_id)
    activity.at("2025-10-20T10:00:00+08:00")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "console.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pension-console-") as var:
        platform = RunningPlatform(Path(var))
        platform.start()
        try:
            make_activity(platform.base)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
                page.goto(f"{platform.base}/console")
                page.fill("#token", "dev-operator")
                page.click("#sign-in-form button[type=submit]")
                page.wait_for_selector("#live-state.live", timeout=15_000)
                page.wait_for_selector("#monthly-chart svg", timeout=30_000)
                for name in ("verification", "reconciliation"):
                    page.click(f'button[data-run="{name}"]')
                    page.wait_for_selector(f"#{name}-body .verdict", timeout=30_000)
                last = Activity(platform.base)
                bank, region = BANKS[0]
                _, fund_account_id = last.open(bank, region)
                last.contribute(bank, fund_account_id, "1200.00")
                page.wait_for_selector('#live-rows tr[data-name="ContributionReceived"]', timeout=10_000)
                page.wait_for_timeout(2500)  # the highlight of the newest rows fades
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
        finally:
            platform.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
