"""A fund account emptied by a withdrawal on a condition other than age (A-CONT-8): closed, it is no
longer the person's active fund account, and another one opens, at any bank, within the year's cap."""

from __future__ import annotations

from datetime import datetime

import pytest

from fund_account_support.platform import bank, start_service
from pension_fund_account.application.payouts import close_after_withdrawal, debit_instalment, record_receiving
from pension_fund_account.application.handlers import load_funds
from pension_shared.clock import rfc3339
from pension_shared.ledger import Metadata

pytestmark = pytest.mark.postgres

SEPTEMBER = datetime.fromisoformat("2025-09-05T10:00:00+08:00")


@pytest.fixture
def service(postgres_url, tmp_path):
    running = start_service(postgres_url, tmp_path, SEPTEMBER)
    yield running
    running.ctx.engine.dispose()


def _lump_sum_paid_after_unemployment(service, participant_id: str, fund_account_id: str) -> None:
    """What the platform and the payout service report, as the consumer hands it to the policies."""
    meta = Metadata(time=rfc3339(service.clock.now()))
    store = service.ctx.store
    with service.ctx.engine.begin() as conn:
        record_receiving(conn, store, {"participant_id": participant_id, "condition": "unemployment",
                                       "may_continue_contributing": True, "since": meta.time}, meta)
    with service.ctx.engine.begin() as conn:
        debit_instalment(conn, store, {"participant_id": participant_id, "fund_account_id": fund_account_id,
                                       "payout_id": "PO1", "withdrawal_id": "W1", "instalment_no": 1,
                                       "basis": {"kind": "all"}}, meta)
    with service.ctx.engine.begin() as conn:
        close_after_withdrawal(conn, store, {"withdrawal_id": "W1", "fund_account_id": fund_account_id}, meta)


def test_a_new_account_opens_at_another_bank_after_the_old_one_closed_and_shares_the_year_s_cap(service):
    participant_id = service.recognise()
    old = service.open_account(participant_id, "ICBC")
    assert service.contribute(old, "3000.00").status_code == 201

    _lump_sum_paid_after_unemployment(service, participant_id, old)

    assert service.account(old)["status"] == "closed"
    with service.ctx.engine.connect() as conn:
        assert load_funds(conn, service.ctx.store, participant_id)[1].active_fund_account_id is None
    refused = service.contribute(old, "100.00")
    assert refused.status_code == 409 and refused.json()["code"] == "CONFLICT", refused.text
    new = service.open_account(participant_id, "CCB")
    over = service.contribute(new, "9000.01", bank_code="CCB")
    assert over.status_code == 422 and over.json()["remaining_quota"] == "9000.00", over.text
    assert service.contribute(new, "9000.00", bank_code="CCB").status_code == 201
    account = service.account(new, bank("CCB"))
    assert (account["status"], account["cash_balance"], account["contributed_this_year"], account["remaining_quota"]) == (
        "active", "9000.00", "12000.00", "0.00")
    again = service.client.post("/v1/fund-accounts", headers=bank("ICBC"),
                                json={"participant_id": participant_id, "branch_city": "Zhengzhou"})
    assert again.status_code == 409 and again.json()["code"] == "FUND_ACCOUNT_EXISTS"
    assert again.json()["fund_account_id"] == new


def test_a_closure_redelivered_changes_nothing_more(service):
    participant_id = service.recognise()
    old = service.open_account(participant_id)
    assert service.contribute(old, "100.00").status_code == 201
    _lump_sum_paid_after_unemployment(service, participant_id, old)
    new = service.open_account(participant_id, "CCB")

    with service.ctx.engine.begin() as conn:
        close_after_withdrawal(conn, service.ctx.store, {"withdrawal_id": "W1", "fund_account_id": old},
                               Metadata(time=rfc3339(service.clock.now())))

    with service.ctx.engine.connect() as conn:
        assert load_funds(conn, service.ctx.store, participant_id)[1].active_fund_account_id == new
