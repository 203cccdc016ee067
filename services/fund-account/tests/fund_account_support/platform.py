"""The fund-account service on a fresh PostgreSQL database, driven through its HTTP API."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from pension_account.bootstrap import DEFINITION as ACCOUNT
from pension_account.domain.id_number import check_character
from pension_fund_account.application.seeding import seed_default_products
from pension_fund_account.bootstrap import DEFINITION
from pension_fund_account.domain.events import (
    CONTRIBUTION_QUOTA_REGISTERED, PARTICIPANT_RECOGNISED, participant_stream,
)
from pension_shared.clock import FixedClock, rfc3339
from pension_shared.ledger import Metadata, NewEvent
from pension_shared.runtime import EmbeddedTransport, ServiceContext, build_app, build_context
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
    ctx = build_context(DEFINITION, _settings(database_url, tmp_path), clock=clock)
    ctx.migrate()
    if seed:
        seed_default_products(ctx)
    return FundAccountService(ctx, clock, TestClient(build_app([ctx], title="t")))


@dataclass
class WithPlatform(FundAccountService):
    """The fund-account service and the information platform (the account service), each on its
    own database, their relays and consumers driven by hand over one embedded log; ``client``
    serves both services' APIs."""

    platform: ServiceContext | None = None

    def settle(self, *, rounds: int = 50) -> None:
        """Relay and consume until nothing moves any more: every saga step has happened."""
        contexts = (self.ctx, self.platform)
        relays = [ctx.relay() for ctx in contexts]
        consumers = [ctx.consumer() for ctx in contexts]
        try:
            quiet = 0
            for _ in range(rounds):
                moved = sum(r.relay_once() for r in relays)
                for consumer in consumers:
                    outcome = consumer.consume_once(timeout_s=0.05)
                    assert outcome.dead_lettered == 0, "a message was dead-lettered"
                    moved += outcome.processed + outcome.duplicates + outcome.ignored
                quiet = quiet + 1 if moved == 0 else 0
                if quiet == 2:
                    return
            raise AssertionError("the services did not settle")
        finally:
            for consumer in consumers:
                consumer.close()

    def register(self, bank_code: str = "ICBC") -> str:
        """Registration on the platform, which the closed loop learns of through the log."""
        first17 = f"{random.randint(110000, 659999)}19800101{random.randint(0, 999):03d}"
        response = self.client.post("/v1/participants", headers=bank(bank_code), json={
            "id_number": first17 + check_character(first17), "name": "张三", "insurance_type": "employee",
            "insured_region": "410100", "channel": "bank",
            "ss_card_account": {"bank_code": bank_code, "account_number": f"6222{random.randint(10**11, 10**12 - 1)}"},
        })
        assert response.status_code == 201, response.text
        self.settle()
        return response.json()["participant_id"]


def start_with_platform(fund_account_url: str, account_url: str, tmp_path: Path, now: datetime) -> WithPlatform:
    clock = FixedClock(now)
    transport = EmbeddedTransport(tmp_path / "log.db")
    transport.prepare([])
    fund = build_context(DEFINITION, _settings(fund_account_url, tmp_path), clock=clock, transport=transport)
    platform = build_context(ACCOUNT, _settings(account_url, tmp_path), clock=clock, transport=transport)
    for ctx in (fund, platform):
        ctx.migrate()
    seed_default_products(fund)
    client = TestClient(build_app([fund, platform], title="t"))
    return WithPlatform(fund, clock, client, platform=platform)


def _settings(database_url: str, tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(env="test", database_url=database_url, transport="embedded",
                           embedded_log_path=tmp_path / "log.db", consumer_group_prefix=f"g{uuid.uuid4().hex[:8]}")


__all__ = ["OPERATOR", "FundAccountService", "WithPlatform", "bank", "start_service", "start_with_platform"]
