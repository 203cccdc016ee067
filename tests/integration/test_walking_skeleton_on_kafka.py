"""The walking skeleton in the production shape: four PostgreSQL databases, real Kafka."""

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from pension_cli.platform import SERVICES, kafka_platform
from pension_shared.clock import SHANGHAI, FixedClock
from pension_shared.testing import random_id
from tests.support.requests import auth, eventually, registration

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.fixture
def platform(new_postgres_database, kafka_bootstrap):
    urls = {definition.name: new_postgres_database() for definition in SERVICES}
    platform = kafka_platform(
        urls, kafka_bootstrap, clock=FixedClock(datetime(2025, 8, 15, 9, 0, tzinfo=SHANGHAI)),
        group_prefix=random_id("skeleton-"), topic_prefix=random_id("t") + ".",
    )
    platform.migrate()
    platform.start_workers()
    yield platform
    platform.stop()


def test_a_registration_reaches_every_other_service_through_kafka(platform):
    client = TestClient(platform.app())

    created = client.post("/v1/participants", json=registration(), headers=auth("dev-bank-ICBC"))
    assert created.status_code == 201, created.text
    participant_id = created.json()["participant_id"]

    for service in ("fund-account", "tax", "payout"):
        view = eventually(lambda: _known(client, service, participant_id), timeout_s=60)
        assert view["participant_id"] == participant_id
    tax_view = client.get(f"/v1/ops/tax/participants/{participant_id}", headers=auth("dev-operator")).json()
    assert "*" in tax_view["id_number"], "operators see the ID number masked"


def test_each_service_ledger_verifies_and_rebuilds_to_the_same_read_model(platform):
    from pension_shared.verification import verify_ledger

    client = TestClient(platform.app())
    ids = [client.post("/v1/participants", json=registration(), headers=auth("dev-bank-ICBC")).json()["participant_id"]
           for _ in range(5)]
    for participant_id in ids:
        eventually(lambda: _known(client, "payout", participant_id), timeout_s=60)
        eventually(lambda: _known(client, "tax", participant_id), timeout_s=60)
        eventually(lambda: _known(client, "fund-account", participant_id), timeout_s=60)

    # Compare on a quiet ledger: the consumers may still be applying earlier tests' events from
    # the shared topics, and a replay racing live writers would see rows the snapshot did not.
    platform.stop_workers()
    for ctx in platform.contexts:
        with ctx.engine.begin() as conn:
            assert verify_ledger(conn).intact
            tables = [t for p in ctx.store.projections for t in p.tables]
            before = {t.name: sorted(map(tuple, conn.execute(t.select()).all())) for t in tables}
            ctx.store.rebuild_projections(conn)
            after = {t.name: sorted(map(tuple, conn.execute(t.select()).all())) for t in tables}
        assert before == after, ctx.definition.name


def _known(client: TestClient, service: str, participant_id: str) -> dict | None:
    response = client.get(f"/v1/ops/{service}/participants/{participant_id}", headers=auth("dev-operator"))
    return response.json() if response.status_code == 200 else None


def test_a_read_given_the_position_a_write_returned_waits_for_it_to_come_through_kafka(platform):
    """Read-your-writes across services in the production shape: no read below polls."""
    client = TestClient(platform.app())
    bank = auth("dev-bank-ICBC")
    created = client.post("/v1/participants", json=registration(), headers=bank)
    participant_id = created.json()["participant_id"]

    def opened():  # noqa: ANN202 - the fund-account service learns of the participant first
        response = client.post("/v1/fund-accounts", json={"participant_id": participant_id, "branch_city": "410100"},
                               headers=bank)
        return response if response.status_code == 201 else None

    account = eventually(opened, timeout_s=60).json()
    participant = client.get(f"/v1/participants/{participant_id}", params={"min_position": account["position"]},
                             headers=bank).json()
    assert participant["fund_account"]["fund_account_id"] == account["fund_account_id"]

    paid = client.post(f"/v1/fund-accounts/{account['fund_account_id']}/contributions", headers=bank,
                       json={"amount": "120.00", "channel": "bank_transfer", "reference": "ryw-kafka"}).json()
    vouchers = client.get("/v1/tax/vouchers", params={"participant_id": participant_id, "min_position": paid["position"]},
                          headers=bank).json()
    assert [v["amount"] for v in vouchers["items"]] == ["120.00"]
    participant = client.get(f"/v1/participants/{participant_id}", params={"min_position": paid["position"]},
                             headers=bank).json()
    assert participant["contributed_this_year"] == "120.00"
