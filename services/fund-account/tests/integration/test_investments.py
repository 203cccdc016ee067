"""Products, purchases, redemptions, income and the ledger through the HTTP API on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from fund_account_support.platform import OPERATOR, bank, start_service
from pension_fund_account.adapters.tables import metadata as read_models
from pension_fund_account.application.seeding import DEFAULT_PRODUCTS, seed_default_products

pytestmark = pytest.mark.postgres

AUGUST = datetime.fromisoformat("2025-08-15T09:00:00+08:00")


@pytest.fixture
def service(postgres_url, tmp_path):
    running = start_service(postgres_url, tmp_path, AUGUST)
    yield running
    running.ctx.engine.dispose()


@pytest.fixture
def funded(service):
    fund_account_id = service.open_account(service.recognise())
    assert service.contribute(fund_account_id, "10000.00").status_code == 201
    return fund_account_id


def post(service, fund_account_id, what, body, bank_code="ICBC"):
    return service.client.post(f"/v1/fund-accounts/{fund_account_id}/{what}", headers=bank(bank_code), json=body)


def test_the_embedded_default_lists_a_few_products_of_each_type_once(service):
    assert seed_default_products(service.ctx) == 0

    listed = service.client.get("/v1/products", headers=bank("ICBC")).json()

    assert [p["product_code"] for p in listed["items"]] == sorted(code for code, _, _ in DEFAULT_PRODUCTS)
    assert {p["product_type"] for p in listed["items"]} == {
        "savings_deposit", "wealth_management", "pension_insurance", "public_fund", "treasury_bond",
        "pension_savings", "index_fund"}
    assert listed["next"] is None
    assert all(p["eligible_now"] for p in listed["items"])


def test_only_an_operator_lists_a_product_and_not_before_its_type_is_eligible(service):
    body = {"product_code": "IF9001", "name": "CSI 1000 index fund", "product_type": "index_fund",
            "eligible_from": "2024-12-01"}

    assert service.client.post("/v1/products", headers=bank("ICBC"), json=body).status_code == 403
    early = service.client.post("/v1/products", headers=OPERATOR, json=body)
    assert (early.status_code, early.json()["code"]) == (422, "PRODUCT_NOT_ELIGIBLE")

    listed = service.client.post("/v1/products", headers=OPERATOR, json={**body, "eligible_from": "2024-12-15"})
    assert listed.status_code == 201, listed.text
    again = service.client.post("/v1/products", headers=OPERATOR, json={**body, "eligible_from": "2024-12-15"})
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICT")


def test_a_purchase_above_the_cash_balance_is_refused_and_changes_nothing(service, funded):
    before = (service.account(funded), service.ledger(funded))

    refused = post(service, funded, "purchases", {"product_code": "PF0001", "amount": "10000.01"})

    assert (refused.status_code, refused.json()["code"]) == (422, "INSUFFICIENT_FUNDS")
    assert refused.headers["content-type"] == "application/problem+json"
    assert (service.account(funded), service.ledger(funded)) == before


def test_an_index_fund_cannot_be_bought_before_2024_12_15(service, funded):
    service.clock.set(datetime.fromisoformat("2024-12-14T23:59:00+08:00"))
    before = service.ledger(funded)

    refused = post(service, funded, "purchases", {"product_code": "IF0001", "amount": "100.00"})
    assert (refused.status_code, refused.json()["code"]) == (422, "PRODUCT_NOT_ELIGIBLE")
    unknown = post(service, funded, "purchases", {"product_code": "NOPE1", "amount": "100.00"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "PRODUCT_NOT_ELIGIBLE")
    assert service.ledger(funded) == before

    service.clock.set(datetime.fromisoformat("2024-12-15T00:00:00+08:00"))
    assert post(service, funded, "purchases", {"product_code": "IF0001", "amount": "100.00"}).status_code == 201


def test_money_goes_round_the_closed_loop_and_the_ledger_records_every_move(service, funded):
    assert post(service, funded, "purchases", {"product_code": "PF0001", "amount": "6000.00", "units": "5000.5"}).status_code == 201
    redeemed = post(service, funded, "redemptions", {"product_code": "PF0001", "units": "2500.25", "proceeds": "3300.00"})
    assert redeemed.status_code == 201, redeemed.text
    assert (redeemed.json()["cost_released"], redeemed.json()["realised_gain"]) == ("3000.00", "300.00")
    income = post(service, funded, "income", {"amount": "12.34", "kind": "dividend", "product_code": "PF0001"})
    assert income.status_code == 201 and income.json()["taxed"] is False

    account = service.account(funded)
    assert account["cash_balance"] == "7312.34"
    assert account["holdings"] == [{"product_code": "PF0001", "product_name": "Target-date 2045 pension fund, Y share",
                                    "product_type": "public_fund", "units": "2500.250000", "cost": "3000.00"}]
    ledger = service.ledger(funded)
    assert [e["type"] for e in ledger] == [
        "FundAccountOpened", "ContributionReceived", "ProductPurchased", "ProductRedeemed", "IncomeCredited"]
    assert [e["sequence"] for e in ledger] == [1, 2, 3, 4, 5]
    assert ledger[0]["prevhash"] is None
    assert all(later["prevhash"] == earlier["hash"] for earlier, later in zip(ledger, ledger[1:]))
    assert ledger[3]["amounts"] == {"proceeds": "3300.00", "cost_released": "3000.00", "realised_gain": "300.00"}
    assert [e["cash_balance"] for e in ledger[1:]] == ["10000.00", "4000.00", "7300.00", "7312.34"]

    page = service.client.get(f"/v1/fund-accounts/{funded}/ledger?after=3&limit=1", headers=OPERATOR).json()
    assert [e["sequence"] for e in page["items"]] == [4] and page["next"] == "4"


def test_redeeming_more_units_than_held_is_refused_and_changes_nothing(service, funded):
    assert post(service, funded, "purchases", {"product_code": "SD0001", "amount": "100.00"}).status_code == 201
    before = service.ledger(funded)

    refused = post(service, funded, "redemptions", {"product_code": "SD0001", "units": "100.000001", "proceeds": "1.00"})

    assert (refused.status_code, refused.json()["code"]) == (422, "INSUFFICIENT_FUNDS")
    assert service.ledger(funded) == before


def test_another_bank_cannot_move_money_in_an_account_it_does_not_hold(service, funded):
    before = service.ledger(funded)

    for what, body in (("purchases", {"product_code": "SD0001", "amount": "1.00"}),
                       ("redemptions", {"product_code": "SD0001", "units": "1", "proceeds": "1.00"}),
                       ("income", {"amount": "1.00", "kind": "interest"})):
        response = post(service, funded, what, body, bank_code="CCB")
        assert (response.status_code, response.json()["code"]) == (404, "FUND_ACCOUNT_NOT_FOUND")
    assert service.ledger(funded) == before


@pytest.mark.parametrize("batch_size", [2, 2000])
def test_the_projections_rebuild_identically_from_the_events(service, funded, batch_size):
    """Whether a holding's moves (bought, sold out, bought again) fall in one batch or several."""
    other = service.open_account(service.recognise(), bank_code="CCB")
    assert service.contribute(other, "3000.00", bank_code="CCB").status_code == 201
    assert post(service, funded, "purchases", {"product_code": "WM0001", "amount": "2500.00"}).status_code == 201
    assert post(service, funded, "redemptions", {"product_code": "WM0001", "units": "2500", "proceeds": "2600.00"}).status_code == 201
    assert post(service, funded, "purchases", {"product_code": "TB0001", "amount": "1000.00"}).status_code == 201
    assert post(service, funded, "purchases", {"product_code": "WM0001", "amount": "400.00"}).status_code == 201
    assert post(service, funded, "redemptions", {"product_code": "WM0001", "units": "100", "proceeds": "101.00"}).status_code == 201
    assert post(service, funded, "income", {"amount": "5.00", "kind": "interest"}).status_code == 201

    def snapshot():
        with service.ctx.engine.connect() as conn:
            return {name: sorted(tuple(r) for r in conn.execute(sa.select(table)).all())
                    for name, table in read_models.tables.items()}

    before = snapshot()
    with service.ctx.engine.begin() as conn:
        replayed = service.ctx.store.rebuild_projections(conn, batch_size=batch_size)

    assert replayed > 0
    assert snapshot() == before
    assert {row[1]: row[2:] for row in before["holdings"]} == {"TB0001": (1000000000, 100000), "WM0001": (300000000, 30000)}
    assert before["holdings"] and before["fund_accounts"] and before["participant_quota"] and before["products"]
