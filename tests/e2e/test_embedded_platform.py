"""`pension run` as a newcomer runs it: one process, four services, the embedded log. It is
killed with SIGKILL and restarted, and nothing it acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pension_shared.positions import of
from pension_shared.testing import free_port
from tests.support.requests import auth, eventually, registration

pytestmark = pytest.mark.e2e


class RunningPlatform:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.output = var / "pension-run.log"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PENSION_ENV", None)
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pension_cli.main", "run", "--port", str(self.port), "--var", str(self.var)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        eventually(self._ready, timeout_s=60, interval_s=0.2)

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.output.read_text()[-3000:]
        try:
            return httpx.get(f"{self.base}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    platform = RunningPlatform(tmp_path_factory.mktemp("platform"))
    platform.start()
    yield platform
    platform.stop()


def _view(base: str, service: str, participant_id: str) -> dict | None:
    path = f"/v1/participants/{participant_id}" if service == "account" else f"/v1/ops/{service}/participants/{participant_id}"
    response = httpx.get(base + path, headers=auth("dev-operator"), timeout=5)
    return response.json() if response.status_code == 200 else None


def test_pension_run_serves_every_service_and_prints_the_development_tokens(running):
    banner = running.output.read_text()
    for token in ("dev-operator", "dev-tax-bureau", "dev-bank-", "dev-agency-"):
        assert token in banner
    assert httpx.get(f"{running.base}/docs").status_code == 200
    paths = httpx.get(f"{running.base}/openapi.json").json()["paths"]
    assert "/v1/participants" in paths and "/v1/ops/clock" in paths


def test_a_registration_is_visible_in_all_four_services(running):
    created = httpx.post(f"{running.base}/v1/participants", json=registration(), headers=auth("dev-bank-ICBC"))
    assert created.status_code == 201, created.text
    participant_id = created.json()["participant_id"]

    for service in ("account", "fund-account", "tax", "payout"):
        assert eventually(lambda: _view(running.base, service, participant_id))["participant_id"] == participant_id


def test_nothing_acknowledged_is_lost_when_the_process_is_killed(running):
    acknowledged = []
    for _ in range(20):
        response = httpx.post(f"{running.base}/v1/participants", json=registration(), headers=auth("dev-bank-ICBC"))
        assert response.status_code == 201
        acknowledged.append(response.json()["participant_id"])

    running.kill()
    running.start()

    for participant_id in acknowledged:
        for service in ("account", "fund-account", "tax", "payout"):
            assert eventually(lambda: _view(running.base, service, participant_id)), (service, participant_id)


def test_the_business_clock_is_set_once_for_every_service(running):
    moved = httpx.put(f"{running.base}/v1/ops/clock", json={"now": "2025-08-15T09:00:00+08:00"},
                      headers=auth("dev-operator"))
    assert moved.status_code == 200
    assert moved.json()["now"].startswith("2025-08-15T09:00")
    refused = httpx.put(f"{running.base}/v1/ops/clock", json={"now": "2025-08-15T09:00:00+08:00"},
                        headers=auth("dev-bank-ICBC"))
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    created = httpx.post(f"{running.base}/v1/participants", json=registration(), headers=auth("dev-bank-ICBC"))
    assert created.json()
    participant = _view(running.base, "account", created.json()["participant_id"])
    assert participant["registered_at"].startswith("2025-08-15T09:00")


def _register(base: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/participants", json=body, headers={**auth("dev-bank-ICBC"), **headers})


@pytest.mark.parametrize("status", ["not_insured", "receiving_basic_pension"])
def test_registration_is_refused_for_whom_the_registry_says_may_not_join(running, status):
    body = registration()
    loaded = httpx.put(f"{running.base}/v1/ops/insurance-registry/{body['id_number']}",
                       json={"status": status, "insurance_type": "employee", "insured_region": "410100"},
                       headers=auth("dev-operator"))
    assert loaded.status_code == 200 and "*" in loaded.json()["id_number"]

    refused = _register(running.base, body)

    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "NOT_INSURED"
    # The request line the server logs names the ID number in its path: masked there too.
    masked = body["id_number"][:4] + "*" * 10 + body["id_number"][-4:]
    line = f"PUT /v1/ops/insurance-registry/{masked} HTTP/1.1"

    def logged() -> str | None:
        text = running.output.read_text()
        return text if line in text or body["id_number"] in text else None

    text = eventually(logged)
    assert body["id_number"] not in text and line in text


def test_the_registry_is_loaded_by_operators_only(running):
    body = registration()
    response = httpx.put(f"{running.base}/v1/ops/insurance-registry/{body['id_number']}",
                         json={"status": "not_insured"}, headers=auth("dev-bank-ICBC"))
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


def test_an_invalid_id_number_is_refused_and_never_echoed(running):
    body = registration(id_number="110105194912310021")
    refused = _register(running.base, body)
    assert refused.status_code == 422 and refused.json()["code"] == "INVALID_ID_NUMBER"
    assert "110105194912310021" not in refused.text


def test_the_same_idempotency_key_returns_the_first_response_and_a_new_body_is_refused(running):
    body = registration()
    first = _register(running.base, body, **{"Idempotency-Key": "k-1"})
    again = _register(running.base, body, **{"Idempotency-Key": "k-1"})
    other = _register(running.base, registration(), **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    "content, content_type, status, code",
    [
        (b"{not json", "application/json", 400, "VALIDATION_FAILED"),
        (b'{"id_number": 1}', "application/json", 422, "VALIDATION_FAILED"),
        (b"id_number=1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_bad_input_gets_a_clear_4xx_problem(running, content, content_type, status, code):
    response = httpx.post(f"{running.base}/v1/participants", content=content,
                          headers={**auth("dev-bank-ICBC"), "Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_unknown_fields_are_refused(running):
    response = _register(running.base, {**registration(), "employer_share": "100.00"})
    assert response.status_code == 422 and response.json()["code"] == "VALIDATION_FAILED"


def test_a_read_given_the_position_a_write_returned_in_another_service_shows_the_write_at_once(running):
    """Read-your-writes across services (INTERFACES.md §1): each read below is made once, straight
    after the write, without polling; the reading service waits for what the position names."""
    bank = auth("dev-bank-ICBC")
    created = _register(running.base, registration())
    assert created.status_code == 201, created.text
    participant_id = created.json()["participant_id"]
    assert of(created.json()["position"]).ledger == "account"

    def opened() -> httpx.Response | None:  # the fund-account service learns of the participant first
        response = httpx.post(f"{running.base}/v1/fund-accounts", headers=bank,
                              json={"participant_id": participant_id, "branch_city": "410100"})
        return response if response.status_code == 201 else None

    account = eventually(opened).json()
    assert of(account["position"]).ledger == "fund-account"
    participant = httpx.get(f"{running.base}/v1/participants/{participant_id}", headers=bank,
                            params={"min_position": account["position"]})
    assert participant.json()["fund_account"]["fund_account_id"] == account["fund_account_id"], participant.text

    paid = httpx.post(f"{running.base}/v1/fund-accounts/{account['fund_account_id']}/contributions", headers=bank,
                      json={"amount": "250.00", "channel": "bank_transfer", "reference": "ryw-1"}).json()
    vouchers = httpx.get(f"{running.base}/v1/tax/vouchers", headers=bank,
                         params={"participant_id": participant_id, "min_position": paid["position"]}).json()
    assert [v["amount"] for v in vouchers["items"]] == ["250.00"], vouchers
    participant = httpx.get(f"{running.base}/v1/participants/{participant_id}", headers=bank,
                            params={"min_position": paid["position"]}).json()
    assert participant["contributed_this_year"] == "250.00"
    records = httpx.get(f"{running.base}/v1/participants/{participant_id}/records", headers=bank,
                        params={"min_position": paid["position"]}).json()
    assert [r["kind"] for r in records["items"]].count("contribution") == 1, records


@pytest.mark.parametrize("position", ["-1", "x", "1.5", str(2**63)])
def test_a_min_position_that_is_not_a_position_is_422(running, position):
    response = httpx.get(f"{running.base}/v1/tax/withholdings", headers=auth("dev-tax-bureau"),
                         params={"min_position": position})
    assert response.status_code == 422 and response.json()["code"] == "VALIDATION_FAILED"
