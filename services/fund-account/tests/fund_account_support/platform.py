"""The fund-account service on a fresh PostgreSQL database, driven through its HTTP API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from pension_fund_account.application.seeding import seed_default_products
from pension_fund_account.bootstrap import DEFINITION
from pension_fund_account.domain.events import (
    CONTRIBUTION_QUOTA_REGISTERED, PARTICIPANT_RECOGNISED, participant_stream,
)
from pension_shared.clock import FixedClock, rfc3339
from pension_shared.ledger import Metadata, NewEvent
from pension_shared.runtime import ServiceContext, build_app, build_context
from pension_shared.settings import ServiceSettings


def bank(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-bank-{code}"}


OPERATOR = {"Authorization": "Bearer dev-operator"}


@dataclass
class FundAccountService:
    ctx: ServiceContext
    clock: FixedClock
    client: TestClient

    def recognise(self, participant_id: str | None = None) -> str:
        participant_id = participant_id or f"P{uuid.uuid4().hex[:20].upper()}"
        self._append(participant_id, [NewEvent(PARTICIPANT_RECOGNISED, {
            "participant_id": participant_id, "insurance_type": "employee", "insured_region": "410100",
            "registered_at": rfc3339(self.clock.now()),
        }, subject=participant_id)])
        return participant_id

    def register_earlier_contributions(self, participant_id: str, *, year: int, total_fen: int) -> None:
        """As if the person had contributed at another bank earlier that year, on a fund account since closed."""
        self._append(participant_id, [NewEvent(CONTRIBUTION_QUOTA_REGISTERED, {
            "participant_id": participant_id, "fund_account_id": "FA-CLOSED-ELSEWHERE", "contribution_id": "C-EARLIER",
            "year": year, "amount": total_fen, "contributed_this_year": total_fen, "remaining_quota": 1_200_000 - total_fen,
        }, subject=participant_id)])

    def open_account(self, participant_id: str, bank_code: str = "ICBC") -> str:
        response = self.client.post("/v1/fund-accounts", headers=bank(bank_code),
                                    json={"participant_id": participant_id, "branch_city": "Zhengzhou"})
        assert response.status_code == 201, response.text
        return response.json()["fund_account_id"]

    def contribute(self, fund_account_id: str, amount: str, bank_code: str = "ICBC", client: TestClient | None = None):
        return (client or self.client).post(
            f"/v1/fund-accounts/{fund_account_id}/contributions", headers=bank(bank_code),
            json={"amount": amount, "channel": "bank_transfer", "reference": uuid.uuid4().hex},
        )

    def account(self, fund_account_id: str, headers: dict[str, str] | None = None) -> dict:
        response = self.client.get(f"/v1/fund-accounts/{fund_account_id}", headers=headers or bank("ICBC"))
        assert response.status_code == 200, response.text
        return response.json()

    def ledger(self, fund_account_id: str) -> list[dict]:
        response = self.client.get(f"/v1/fund-accounts/{fund_account_id}/ledger", headers=bank("ICBC"))
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def _append(self, participant_id: str, new: list[NewEvent]) -> None:
        with self.ctx.engine.begin() as conn:
            stream = self.ctx.store.load(conn, participant_stream(participant_id))
            self.ctx.store.append(conn, stream.stream_id, stream.version, new, Metadata(time=rfc3339(self.clock.now())))


def start_service(database_url: str, tmp_path: Path, now: datetime, *, seed: bool = True) -> FundAccountService:
    clock = FixedClock(now)
    settings = ServiceSettings(env="test", database_url=database_url, transport="embedded",
                               embedded_log_path=tmp_path / "log.db")
    ctx = build_context(DEFINITION, settings, clock=clock)
    ctx.migrate()
    if seed:
        seed_default_products(ctx)
    return FundAccountService(ctx, clock, TestClient(build_app([ctx], title="t")))


__all__ = ["OPERATOR", "FundAccountService", "bank", "start_service"]
