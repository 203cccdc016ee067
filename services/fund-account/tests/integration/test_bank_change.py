"""A bank change as a saga between the closed loop and the information platform (A-CHG-1..7), on
PostgreSQL, through both services' HTTP APIs and their event log."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from fund_account_support.platform import OPERATOR, bank, start_with_platform
from pension_fund_account.application.policies import policies
from pension_fund_account.domain.events import BANK_CHANGE_COMPLETED
from pension_fund_account.domain.units import parse_units
from pension_shared.money import parse_yuan

pytestmark = pytest.mark.postgres

AUGUST_15 = datetime.fromisoformat("2025-08-15T09:00:00+08:00")
AUGUST_16 = datetime.fromisoformat("2025-08-16T10:00:00+08:00")
CONFIRMED = "cn.pension.account.BankChangeConfirmed.v1"

CASH_DELTA = {
    "ContributionReceived": ("amount", 1), "IncomeCredited": ("amount", 1), "ProductPurchased": ("amount", -1),
    "ProductRedeemed": ("proceeds", 1), "CashTransferredOut": ("amount", -1), "TransferInReceived": ("amount", 1),
}
BOOK_DELTA = {
    "ContributionReceived": ("amount", 1), "IncomeCredited": ("amount", 1), "ProductRedeemed": ("realised_gain", 1),
    "CashTransferredOut": ("amount", -1), "TransferInReceived": ("amount", 1),
    "HoldingTransferredOut": ("cost", -1), "HoldingTransferredIn": ("cost", 1),
}


@pytest.fixture
def service(new_postgres_database, tmp_path):
    running = start_with_platform(new_postgres_database(), new_postgres_database(), tmp_path, AUGUST_15)
    yield running
    running.ctx.engine.dispose()
    running.platform.engine.dispose()


def post(service, path, body, bank_code="ICBC"):
    return service.client.post(path, headers=bank(bank_code), json=body)


def ledger(service, fund_account_id, bank_code):
    response = service.client.get(f"/v1/fund-accounts/{fund_account_id}/ledger", headers=bank(bank_code))
    assert response.status_code == 200, response.text
    return response.json()["items"]


def fen(entry, field):
    return parse_yuan(entry["amounts"][field], allow_zero=True)


def replay_cash_and_book_value(entries):
    """Each entry's cash balance follows from the amounts moved; the book value (cash + cost of
    holdings) from what came in and what left."""
    cash = book = 0
    for entry in entries:
        if entry["type"] in CASH_DELTA:
            field, sign = CASH_DELTA[entry["type"]]
            cash += sign * fen(entry, field)
        if entry["type"] in BOOK_DELTA:
            field, sign = BOOK_DELTA[entry["type"]]
            book += sign * fen(entry, field)
        if "cash_balance" in entry:
            assert parse_yuan(entry["cash_balance"], allow_zero=True) == cash, entry
    return cash, book


def a_funded_account_at_icbc(service, contributed="4000.00", invested="1000.00"):
    participant_id = service.register()
    fund_account_id = service.open_account(participant_id, bank_code="ICBC")
    assert service.contribute(fund_account_id, contributed).status_code == 201
    assert post(service, f"/v1/fund-accounts/{fund_account_id}/purchases",
                {"product_code": "PF0001", "amount": invested}).status_code == 201
    service.settle()
    return participant_id, fund_account_id


def test_a_bank_change_in_the_middle_of_the_year_leaves_exactly_the_remaining_quota_at_the_new_bank(service):
    participant_id, old = a_funded_account_at_icbc(service)
    service.clock.set(AUGUST_16)

    requested = post(service, f"/v1/fund-accounts/{old}/bank-change", {"new_bank_code": "CCB", "new_branch_city": "Beijing"})

    assert requested.status_code == 202, requested.text
    assert requested.json()["status"] == "requested"
    bank_change_id = requested.json()["bank_change_id"]
    assert service.account(old)["status"] == "frozen"
    frozen = service.contribute(old, "1.00")
    assert (frozen.status_code, frozen.json()["code"]) == (409, "ACCOUNT_FROZEN")
    blocked = post(service, f"/v1/fund-accounts/{old}/purchases", {"product_code": "PF0001", "amount": "1.00"})
    assert (blocked.status_code, blocked.json()["code"]) == (409, "ACCOUNT_FROZEN")
    again = post(service, f"/v1/fund-accounts/{old}/bank-change", {"new_bank_code": "BOC", "new_branch_city": "Xi'an"})
    assert (again.status_code, again.json()["code"]) == (409, "BANK_CHANGE_NOT_ALLOWED")

    service.settle()

    change = service.client.get(f"/v1/fund-accounts/bank-changes/{bank_change_id}", headers=bank("CCB")).json()
    assert (change["status"], change["old_fund_account_id"], change["new_bank_code"]) == ("completed", old, "CCB")
    new = change["new_fund_account_id"]
    moved = service.account(new, headers=bank("CCB"))
    assert (moved["status"], moved["bank_code"], moved["cash_balance"]) == ("active", "CCB", "3000.00")
    assert [(h["product_code"], h["units"], h["cost"]) for h in moved["holdings"]] == [("PF0001", "1000.000000", "1000.00")]
    assert (moved["contributed_this_year"], moved["remaining_quota"]) == ("4000.00", "8000.00")
    closed = service.account(old)
    assert (closed["status"], closed["cash_balance"], closed["holdings"]) == ("closed", "0.00", [])
    for account, other_bank in ((new, "ICBC"), (old, "CCB")):
        hidden = service.client.get(f"/v1/fund-accounts/{account}", headers=bank(other_bank))
        assert (hidden.status_code, hidden.json()["code"]) == (404, "FUND_ACCOUNT_NOT_FOUND")
    assert service.contribute(old, "1.00").status_code == 409

    over = service.contribute(new, "8000.01", bank_code="CCB")
    assert (over.status_code, over.json()["code"], over.json()["remaining_quota"]) == (
        422, "CONTRIBUTION_CAP_EXCEEDED", "8000.00")
    assert service.contribute(new, "8000.00", bank_code="CCB").status_code == 201
    one_fen = service.contribute(new, "0.01", bank_code="CCB")
    assert (one_fen.status_code, one_fen.json()["remaining_quota"]) == (422, "0.00")

    service.settle()
    view = service.client.get(f"/v1/participants/{participant_id}", headers=bank("CCB")).json()
    assert view["fund_account"] == {"bank_code": "CCB", "fund_account_id": new}
    assert (view["contributed_this_year"], view["remaining_quota"]) == ("12000.00", "0.00")
    gone = service.client.get(f"/v1/participants/{participant_id}", headers=bank("ICBC"))
    assert (gone.status_code, gone.json()["code"]) == (404, "PARTICIPANT_NOT_FOUND")
    records = service.client.get(f"/v1/participants/{participant_id}/records?year=2025", headers=bank("CCB")).json()
    assert [(r["kind"], r["amount"], r["fund_account_id"]) for r in records["items"]] == [
        ("contribution", "4000.00", old), ("purchase", "1000.00", old), ("bank_change", "4000.00", new),
        ("contribution", "8000.00", new),
    ]

    old_cash, old_book = replay_cash_and_book_value(ledger(service, old, "ICBC"))
    new_cash, new_book = replay_cash_and_book_value(ledger(service, new, "CCB"))
    assert (old_cash, old_book) == (0, 0)
    assert new_cash == parse_yuan("11000.00") and new_book == parse_yuan("12000.00")
    assert new_book == new_cash + parse_yuan(moved["holdings"][0]["cost"])
    entries = ledger(service, new, "CCB")
    assert [e["type"] for e in entries[:3]] == ["FundAccountOpened", "TransferInReceived", "HoldingTransferredIn"]
    assert entries[2]["units"] == "1000.000000" and parse_units(entries[2]["units"]) == 1_000_000_000
    assert all(e["bank_change_id"] == bank_change_id for e in entries[1:3])


def test_a_bank_change_is_refused_on_a_day_with_a_contribution_and_changes_nothing(service):
    participant_id, old = a_funded_account_at_icbc(service)
    before = (service.account(old), ledger(service, old, "ICBC"))

    refused = post(service, f"/v1/fund-accounts/{old}/bank-change", {"new_bank_code": "CCB", "new_branch_city": "Beijing"})

    assert (refused.status_code, refused.json()["code"]) == (409, "BANK_CHANGE_NOT_ALLOWED")
    assert refused.headers["content-type"] == "application/problem+json"
    service.settle()
    assert (service.account(old), ledger(service, old, "ICBC")) == before
    view = service.client.get(f"/v1/participants/{participant_id}", headers=bank("ICBC")).json()
    assert view["fund_account"] == {"bank_code": "ICBC", "fund_account_id": old}


@pytest.mark.parametrize("body", [
    {"new_bank_code": "ccb", "new_branch_city": "Beijing"},
    {"new_bank_code": "CCB"},
    {"new_bank_code": "CCB", "new_branch_city": "Beijing", "extra": 1},
])
def test_a_malformed_bank_change_is_a_validation_failure(service, body):
    _, old = a_funded_account_at_icbc(service)

    response = post(service, f"/v1/fund-accounts/{old}/bank-change", body)

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_FAILED")


def test_only_the_holding_bank_may_ask_for_a_bank_change(service):
    _, old = a_funded_account_at_icbc(service)
    service.clock.set(AUGUST_16)

    response = post(service, f"/v1/fund-accounts/{old}/bank-change", {"new_bank_code": "BOC", "new_branch_city": "X"},
                    bank_code="CCB")

    assert (response.status_code, response.json()["code"]) == (404, "FUND_ACCOUNT_NOT_FOUND")


def test_the_platform_refuses_a_bank_change_for_a_deceased_person_and_the_old_account_is_unfrozen(service):
    participant_id, old = a_funded_account_at_icbc(service)
    service.clock.set(AUGUST_16)
    # As the platform's registration of a death leaves the account (the death flow is not this test's).
    with service.platform.engine.begin() as conn:
        conn.execute(sa.text("UPDATE participants SET status = 'deceased' WHERE participant_id = :p"), {"p": participant_id})

    requested = post(service, f"/v1/fund-accounts/{old}/bank-change", {"new_bank_code": "CCB", "new_branch_city": "Beijing"})
    assert requested.status_code == 202
    service.settle()

    change = service.client.get(f"/v1/fund-accounts/bank-changes/{requested.json()['bank_change_id']}",
                                headers=OPERATOR).json()
    assert change["status"] == "aborted" and "deceased" in change["reason"]
    account = service.account(old)
    assert (account["status"], account["cash_balance"]) == ("active", "3000.00")
    types = [e["type"] for e in ledger(service, old, "ICBC")]
    assert types[-2:] == ["FundAccountFrozen", "FundAccountUnfrozen"]
    assert service.contribute(old, "1.00").status_code == 201


def test_a_redelivered_confirmation_changes_nothing_twice(service):
    _, old = a_funded_account_at_icbc(service)
    service.clock.set(AUGUST_16)
    assert post(service, f"/v1/fund-accounts/{old}/bank-change",
                {"new_bank_code": "CCB", "new_branch_city": "Beijing"}).status_code == 202
    service.settle()
    with service.platform.engine.connect() as conn:
        confirmation = next(e for e in service.platform.store.read_all(conn) if e.type == CONFIRMED)
    with service.ctx.engine.connect() as conn:
        head = service.ctx.store.head_position(conn)

    # Past the inbox, straight to the policy: the aggregate's own guard holds.
    with service.ctx.engine.begin() as conn:
        policies(service.ctx.store)[CONFIRMED](conn, confirmation)

    with service.ctx.engine.connect() as conn:
        assert service.ctx.store.head_position(conn) == head
        completions = [e for e in service.ctx.store.read_all(conn) if e.event_type.name == BANK_CHANGE_COMPLETED]
        accounts = conn.execute(sa.text("SELECT count(*) FROM fund_accounts")).scalar_one()
    assert len(completions) == 1 and accounts == 2
