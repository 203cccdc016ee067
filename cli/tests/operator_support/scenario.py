"""A running embedded platform driven through its HTTP API, and the `pension` command run in
process against it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from fastapi.testclient import TestClient

from pension_account.domain.id_number import check_character
from pension_cli.main import main
from pension_cli.platform import Platform, embedded_platform

T = TypeVar("T")
OPERATOR = {"Authorization": "Bearer dev-operator"}


def eventually(probe: Callable[[], T | None], *, timeout_s: float = 30.0, interval_s: float = 0.1) -> T:
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"not reached within {timeout_s} s (last: {last!r})")


def random_id_number(born: str = "19800101") -> str:
    first17 = f"{random.randint(110000, 659999)}{born}{random.randint(0, 999):03d}"
    return first17 + check_character(first17)


@dataclass
class Running:
    platform: Platform
    var: Path
    client: TestClient
    id_numbers: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, var: Path) -> "Running":
        platform = embedded_platform(var)
        platform.migrate()
        platform.seed()
        platform.start_workers()
        return cls(platform, var, TestClient(platform.app()))

    def stop(self) -> None:
        self.client.close()
        self.platform.stop()

    def set_clock(self, now: str) -> None:
        response = self.client.put("/v1/ops/clock", json={"now": now}, headers=OPERATOR)
        assert response.status_code == 200, response.text

    def post(self, path: str, body: dict, headers: dict, expect: int | None = 201) -> dict:
        response = self.client.post(path, json=body, headers=headers)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, headers: dict = OPERATOR) -> dict | None:
        response = self.client.get(path, headers=headers)
        return response.json() if response.status_code == 200 else None

    def register_and_open(self, bank: str = "ICBC", region: str = "410100") -> tuple[str, str]:
        headers = {"Authorization": f"Bearer dev-bank-{bank}"}
        id_number = random_id_number()
        self.id_numbers.append(id_number)
        participant_id = self.post("/v1/participants", {
            "id_number": id_number, "name": "张三", "insurance_type": "employee", "insured_region": region,
            "ss_card_account": {"bank_code": bank, "account_number": f"6222{random.randint(10**11, 10**12 - 1)}"},
            "channel": "bank",
        }, headers)["participant_id"]
        eventually(lambda: self.get(f"/v1/ops/fund-account/participants/{participant_id}"))
        fund_account_id = self.post("/v1/fund-accounts", {"participant_id": participant_id, "branch_city": region},
                                    headers)["fund_account_id"]
        return participant_id, fund_account_id

    def contribute(self, fund_account_id: str, amount: str, bank: str = "ICBC") -> None:
        self.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                  {"amount": amount, "channel": "bank_transfer", "reference": "ops"},
                  {"Authorization": f"Bearer dev-bank-{bank}"})

    def withdraw_everything(self, participant_id: str, region: str = "410100", bank: str = "ICBC") -> str:
        """Retirement approved by the agency, then a lump sum paid out; returns the withdrawal id."""
        headers = {"Authorization": f"Bearer dev-bank-{bank}"}
        eventually(lambda: (self.get(f"/v1/participants/{participant_id}", headers) or {}).get("fund_account"))
        application = self.post("/v1/withdrawal-applications",
                                {"participant_id": participant_id, "condition": "retirement_age", "evidence": ["doc"]},
                                headers)
        self.post(f"/v1/withdrawal-applications/{application['application_id']}/decision", {"decision": "approved"},
                  {"Authorization": f"Bearer dev-agency-{region}"}, expect=200)
        eventually(lambda: (self.get(f"/v1/participants/{participant_id}", headers) or {}).get("status") == "receiving")

        def withdraw() -> dict | None:
            response = self.client.post("/v1/withdrawals", json={"participant_id": participant_id, "method": "lump_sum"},
                                        headers=headers)
            return response.json() if response.status_code == 201 else None

        withdrawal_id = eventually(withdraw)["withdrawal_id"]
        eventually(lambda: any(p["status"] == "paid" for p in
                               (self.get(f"/v1/withdrawals/{withdrawal_id}", headers) or {}).get("payouts", [])),
                   timeout_s=60)
        return withdrawal_id

    def quiet(self) -> None:
        """Wait until every consumer has caught up with the log and every outbox is published."""
        from pension_cli.commands.consumers import lag_rows
        from pension_cli.deployment import Deployment, SERVICE_NAMES
        import sqlalchemy as sa

        deployment = Deployment("embedded", {n: str(self.platform.context(n).engine.url) for n in SERVICE_NAMES},
                                str(self.var / "eventlog.db"), "pension", 3)

        def settled() -> bool:
            for ctx in self.platform.contexts:
                with ctx.engine.connect() as conn:
                    if conn.execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one():
                        return False
            log = deployment.log()
            try:
                return all(row["lag"] == 0 for row in lag_rows(log, deployment))
            finally:
                log.close()

        eventually(settled, timeout_s=60)
        time.sleep(0.3)
        eventually(settled, timeout_s=60)


def pension(capsys, *argv: str) -> tuple[int, str]:
    """Run `pension <argv>` in this process; return its exit code and what it printed."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out
