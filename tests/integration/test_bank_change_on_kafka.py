"""Issue 3 through the production adapters: PostgreSQL per service and real Kafka between them."""

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from pension_cli.platform import SERVICES, kafka_platform
from pension_shared.clock import SHANGHAI, FixedClock
from pension_shared.testing import random_id
from tests.support.requests import auth, eventually, registration

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OLD, NEW, OPERATOR = auth("dev-bank-ICBC"), auth("dev-bank-CCB"), auth("dev-operator")


@pytest.fixture
def clock():
    return FixedClock(datetime(2025, 6, 2, 10, 0, tzinfo=SHANGHAI))


@pytest.fixture
def client(new_postgres_database, kafka_bootstrap, clock):
    platform = kafka_platform({d.name: new_postgres_database() for d in SERVICES}, kafka_bootstrap, clock=clock,
                              group_prefix=random_id("bank-change-"), topic_prefix=random_id("t") + ".")
    platform.migrate()
    platform.seed()
    platform.start_workers()
    yield TestClient(platform.app())
    platform.stop()


def test_a_mid_year_bank_change_through_kafka_leaves_exactly_the_remaining_quota_at_the_new_bank(client, clock):
    participant_id = client.post("/v1/participants", json=registration(), headers=OLD).json()["participant_id"]
    eventually(lambda: client.get(f"/v1/ops/fund-account/participants/{participant_id}", headers=OPERATOR).status_code == 200,
               timeout_s=60)
    old = client.post("/v1/fund-accounts", json={"participant_id": participant_id, "branch_city": "410100"},
                      headers=OLD).json()["fund_account_id"]
    assert client.post(f"/v1/fund-accounts/{old}/contributions",
                       json={"amount": "4000.00", "channel": "bank_transfer", "reference": "r"}, headers=OLD).status_code == 201

    same_day = client.post(f"/v1/fund-accounts/{old}/bank-change", json={"new_bank_code": "CCB", "new_branch_city": "110000"},
                           headers=OLD)
    assert same_day.status_code == 409 and same_day.json()["code"] == "BANK_CHANGE_NOT_ALLOWED"

    clock.set(datetime(2025, 6, 3, 9, 0, tzinfo=SHANGHAI))
    requested = client.post(f"/v1/fund-accounts/{old}/bank-change",
                            json={"new_bank_code": "CCB", "new_branch_city": "110000"}, headers=OLD)
    assert requested.status_code == 202, requested.text
    change_id = requested.json()["bank_change_id"]

    change = eventually(lambda: (c := client.get(f"/v1/fund-accounts/bank-changes/{change_id}", headers=NEW).json())
                        .get("status") == "completed" and c, timeout_s=60)
    new = change["new_fund_account_id"]
    assert client.get(f"/v1/fund-accounts/{new}", headers=NEW).json()["cash_balance"] == "4000.00"
    assert client.get(f"/v1/fund-accounts/{old}", headers=OLD).json()["status"] == "closed"

    over = client.post(f"/v1/fund-accounts/{new}/contributions",
                       json={"amount": "8000.01", "channel": "cash", "reference": "r"}, headers=NEW)
    assert over.status_code == 422 and over.json()["remaining_quota"] == "8000.00"
    assert client.post(f"/v1/fund-accounts/{new}/contributions",
                       json={"amount": "8000.00", "channel": "cash", "reference": "r"}, headers=NEW).status_code == 201

    view = eventually(lambda: (v := client.get(f"/v1/participants/{participant_id}", headers=NEW)).status_code == 200
                      and v.json()["fund_account"]["fund_account_id"] == new and v.json(), timeout_s=60)
    assert view["fund_account"]["bank_code"] == "CCB"
    assert client.get(f"/v1/participants/{participant_id}", headers=OLD).status_code == 404
