"""A bank's and an agency's moves through the HTTP API of a running platform, for end-to-end tests."""

from __future__ import annotations

from decimal import Decimal

import httpx

from tests.support.requests import auth, eventually, registration

OPERATOR = auth("dev-operator")


class Bank:
    def __init__(self, base: str, code: str = "ICBC") -> None:
        self.base, self.code, self.headers = base, code, auth(f"dev-bank-{code}")

    def post(self, path: str, body: dict, *, expect: int | None = None) -> httpx.Response:
        response = httpx.post(self.base + path, json=body, headers=self.headers, timeout=10)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def get(self, path: str) -> dict:
        response = httpx.get(self.base + path, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def register_and_open(self, *, region: str = "410100") -> tuple[str, str]:
        participant_id = self.post("/v1/participants", registration(region=region, bank=self.code), expect=201).json()["participant_id"]
        eventually(lambda: httpx.get(f"{self.base}/v1/ops/fund-account/participants/{participant_id}",
                                     headers=OPERATOR).status_code == 200)
        fund_account_id = self.post("/v1/fund-accounts", {"participant_id": participant_id, "branch_city": region},
                                    expect=201).json()["fund_account_id"]
        return participant_id, fund_account_id

    def contribute(self, fund_account_id: str, amount: str) -> None:
        self.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                  {"amount": amount, "channel": "bank_transfer", "reference": "e2e"}, expect=201)

    def receiving(self, participant_id: str, condition: str = "retirement_age", *, region: str = "410100") -> None:
        """Apply through the bank; the agency of the insured region approves; wait until the
        payout service knows the participant is receiving."""
        eventually(lambda: self.get(f"/v1/participants/{participant_id}").get("fund_account"))
        application = self.post("/v1/withdrawal-applications",
                                {"participant_id": participant_id, "condition": condition, "evidence": ["doc"]},
                                expect=201).json()
        decided = httpx.post(f"{self.base}/v1/withdrawal-applications/{application['application_id']}/decision",
                             json={"decision": "approved"}, headers=auth(f"dev-agency-{region}"), timeout=10)
        assert decided.status_code == 200, decided.text
        eventually(lambda: self.get(f"/v1/participants/{participant_id}")["status"] == "receiving")

    def withdraw(self, participant_id: str, **plan) -> dict:
        def attempt() -> dict | None:
            response = self.post("/v1/withdrawals", {"participant_id": participant_id, **plan})
            return response.json() if response.status_code == 201 else None
        return eventually(attempt)


def set_clock(base: str, now: str) -> None:
    response = httpx.put(f"{base}/v1/ops/clock", json={"now": now}, headers=OPERATOR, timeout=10)
    assert response.status_code == 200, response.text


def yuan(text: str) -> Decimal:
    return Decimal(text)
