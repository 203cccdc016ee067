"""Contributions through the HTTP API on PostgreSQL: the cap holds under concurrency and across banks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from fund_account_support.platform import OPERATOR, bank, start_service

pytestmark = pytest.mark.postgres

AUGUST = datetime.fromisoformat("2025-08-15T09:00:00+08:00")


@pytest.fixture
def service(postgres_url, tmp_path):
    running = start_service(postgres_url, tmp_path, AUGUST)
    yield running
    running.ctx.engine.dispose()


def _fire_fifty_contributions_of_500_yuan(service, fund_account_id):
    def one(_: int):
        return service.contribute(fund_account_id, "500.00", client=TestClient(service.client.app))

    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(one, range(50)))


def test_fifty_concurrent_contributions_accept_exactly_the_cap_and_refuse_the_rest(service):
    participant_id = service.recognise()
    fund_account_id = service.open_account(participant_id)

    responses = _fire_fifty_contributions_of_500_yuan(service, fund_account_id)

    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == 24
    assert {(r.status_code, r.json()["code"], r.json()["remaining_quota"]) for r in refused} == {
        (422, "CONTRIBUTION_CAP_EXCEEDED", "0.00")
    }
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    account = service.account(fund_account_id)
    assert (account["cash_balance"], account["contributed_this_year"], account["remaining_quota"]) == (
        "12000.00", "12000.00", "0.00")
    contributions = [e for e in service.ledger(fund_account_id) if e["type"] == "ContributionReceived"]
    assert len(contributions) == 24
    assert sum(int(e["amounts"]["amount"].replace(".", "")) for e in contributions) == 1_200_000


def test_purchases_at_once_with_contributions_to_the_same_account_queue_and_all_land(service):
    """A purchase takes the person's lock as a contribution does: it waits for the contribution
    instead of losing the race for the account's next version, retry after retry."""
    participant_id = service.recognise()
    fund_account_id = service.open_account(participant_id)
    assert service.contribute(fund_account_id, "1000.00").status_code == 201
    product = service.client.get("/v1/products", headers=bank("ICBC")).json()["items"][0]["product_code"]

    def one(n: int):
        client = TestClient(service.client.app)
        if n % 2:
            return client.post(f"/v1/fund-accounts/{fund_account_id}/purchases", headers=bank("ICBC"),
                               json={"product_code": product, "amount": "10.00"})
        return service.contribute(fund_account_id, "100.00", client=client)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(160)))

    assert [r.status_code for r in responses if r.status_code != 201] == [], [r.text for r in responses if r.status_code != 201][:3]
    account = service.account(fund_account_id)
    assert (account["cash_balance"], account["contributed_this_year"]) == ("8200.00", "9000.00")
    assert [(h["product_code"], h["cost"]) for h in account["holdings"]] == [(product, "800.00")]


def test_contributions_at_a_closed_account_elsewhere_that_year_count_under_concurrency(service):
    participant_id = service.recognise()
    service.register_earlier_contributions(participant_id, year=2025, total_fen=300_000)
    fund_account_id = service.open_account(participant_id, bank_code="ICBC")

    responses = _fire_fifty_contributions_of_500_yuan(service, fund_account_id)

    assert sum(r.status_code == 201 for r in responses) == 18
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"CONTRIBUTION_CAP_EXCEEDED"}
    account = service.account(fund_account_id)
    assert (account["cash_balance"], account["contributed_this_year"], account["remaining_quota"]) == (
        "9000.00", "12000.00", "0.00")


def test_the_quota_resets_at_midnight_in_shanghai(service):
    participant_id = service.recognise()
    fund_account_id = service.open_account(participant_id)
    service.clock.set(datetime.fromisoformat("2025-12-31T23:30:00+08:00"))
    assert service.contribute(fund_account_id, "12000.00").status_code == 201

    late = service.contribute(fund_account_id, "0.01")
    assert (late.status_code, late.json()["code"], late.json()["remaining_quota"]) == (422, "CONTRIBUTION_CAP_EXCEEDED", "0.00")

    service.clock.set(datetime.fromisoformat("2026-01-01T00:10:00+08:00"))
    next_year = service.contribute(fund_account_id, "12000.00")
    assert next_year.status_code == 201, next_year.text
    assert next_year.json()["year"] == 2026
    account = service.account(fund_account_id)
    assert (account["year"], account["contributed_this_year"], account["cash_balance"]) == (2026, "12000.00", "24000.00")


def test_one_fen_over_the_cap_is_refused_with_the_remaining_quota_and_changes_nothing(service):
    participant_id = service.recognise()
    fund_account_id = service.open_account(participant_id)
    assert service.contribute(fund_account_id, "11999.99").status_code == 201
    before = service.ledger(fund_account_id)

    refused = service.contribute(fund_account_id, "0.02")

    assert refused.status_code == 422
    assert refused.json()["code"] == "CONTRIBUTION_CAP_EXCEEDED"
    assert refused.json()["remaining_quota"] == "0.01"
    assert service.ledger(fund_account_id) == before
    assert service.contribute(fund_account_id, "0.01").status_code == 201


def test_a_second_fund_account_anywhere_is_refused(service):
    participant_id = service.recognise()
    first = service.open_account(participant_id, bank_code="ICBC")

    again = service.client.post("/v1/fund-accounts", headers=bank("CCB"),
                                json={"participant_id": participant_id, "branch_city": "Beijing"})

    assert again.status_code == 409
    assert again.json()["code"] == "FUND_ACCOUNT_EXISTS"
    assert again.json()["fund_account_id"] == first


def test_a_participant_unknown_to_the_closed_loop_gets_no_fund_account(service):
    response = service.client.post("/v1/fund-accounts", headers=bank("ICBC"),
                                   json={"participant_id": "PNOBODY", "branch_city": "Zhengzhou"})

    assert (response.status_code, response.json()["code"]) == (404, "PARTICIPANT_NOT_FOUND")


def test_another_bank_learns_nothing_about_an_account(service):
    fund_account_id = service.open_account(service.recognise(), bank_code="ICBC")

    for path in ("", "/ledger"):
        response = service.client.get(f"/v1/fund-accounts/{fund_account_id}{path}", headers=bank("CCB"))
        assert (response.status_code, response.json()["code"]) == (404, "FUND_ACCOUNT_NOT_FOUND")
    contribution = service.contribute(fund_account_id, "1.00", bank_code="CCB")
    assert (contribution.status_code, contribution.json()["code"]) == (404, "FUND_ACCOUNT_NOT_FOUND")
    assert service.account(fund_account_id, headers=OPERATOR)["bank_code"] == "ICBC"


@pytest.mark.parametrize("amount", ["500", "500.5", " 500.00", "500.001", "-1.00", "0.00", "1e3", 500])
def test_a_malformed_amount_is_a_validation_failure(service, amount):
    """INTERFACES.md §1: money is a string in yuan with exactly two decimals."""
    fund_account_id = service.open_account(service.recognise())

    response = service.client.post(
        f"/v1/fund-accounts/{fund_account_id}/contributions", headers=bank("ICBC"),
        json={"amount": amount, "channel": "cash", "reference": "r"},
    )

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_FAILED")
    assert service.account(fund_account_id)["cash_balance"] == "0.00"


def test_a_contribution_replayed_under_the_same_idempotency_key_is_recorded_once(service):
    fund_account_id = service.open_account(service.recognise())
    headers = {**bank("ICBC"), "Idempotency-Key": "k-1"}
    body = {"amount": "100.00", "channel": "cash", "reference": "r"}

    first = service.client.post(f"/v1/fund-accounts/{fund_account_id}/contributions", headers=headers, json=body)
    second = service.client.post(f"/v1/fund-accounts/{fund_account_id}/contributions", headers=headers, json=body)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert service.account(fund_account_id)["cash_balance"] == "100.00"
