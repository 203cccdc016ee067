"""The same closed loop on SQLite, the embedded default's database."""

from __future__ import annotations

from datetime import datetime

from fund_account_support.platform import start_service


def test_a_contribution_and_a_purchase_work_on_the_embedded_database(sqlite_url, tmp_path):
    service = start_service(sqlite_url, tmp_path, datetime.fromisoformat("2025-08-15T09:00:00+08:00"))
    try:
        fund_account_id = service.open_account(service.recognise())
        assert service.contribute(fund_account_id, "12000.00").status_code == 201
        assert service.contribute(fund_account_id, "0.01").json()["code"] == "CONTRIBUTION_CAP_EXCEEDED"
        purchase = service.client.post(
            f"/v1/fund-accounts/{fund_account_id}/purchases", headers={"Authorization": "Bearer dev-bank-ICBC"},
            json={"product_code": "PS0001", "amount": "2000.00"},
        )
        assert purchase.status_code == 201, purchase.text
        assert service.account(fund_account_id)["cash_balance"] == "10000.00"
    finally:
        service.ctx.engine.dispose()
