"""The operators' console (`/console`) on a running embedded platform: who may look, what each
view shows (computed by the operator commands' own code), and the live stream of events."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

from operator_support.scenario import OPERATOR, Running, eventually
from pension_cli.commands.console import console_app
from pension_cli.commands.consumers import lag_rows
from pension_cli.console.sessions import COOKIE, Sessions
from pension_cli.deployment import Deployment, DeploymentError
from pension_shared.auth import Principal, digest
from pension_shared.testing import free_port

PROBLEM = "application/problem+json"
DATA_ROUTES = [
    ("GET", "/console/api/consumers"), ("GET", "/console/api/verification"), ("POST", "/console/api/verification"),
    ("GET", "/console/api/reconciliation"), ("POST", "/console/api/reconciliation"), ("GET", "/console/api/monthly"),
    ("POST", "/console/api/monthly"), ("GET", "/console/api/events?follow=false"),
]
NOT_OPERATORS = ("dev-bank-ICBC", "dev-tax-bureau", "dev-agency-410100")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    running = Running.start(tmp_path_factory.mktemp("console"))
    running.set_clock("2025-10-01T10:00:00+08:00")
    participant_id, fund_account_id = running.register_and_open("ICBC", "410100")
    running.contribute(fund_account_id, "1000.00")
    running.quiet()
    running.participant_id, running.fund_account_id = participant_id, fund_account_id
    yield running
    running.stop()


def _fresh(running: Running) -> TestClient:
    """A client with its own (empty) cookie jar on the same app."""
    return TestClient(running.client.app)


def _sign_in(client: TestClient, token: str = "dev-operator") -> httpx.Response:
    return client.post("/console/session", json={}, headers={"Authorization": f"Bearer {token}"})


def test_the_page_and_its_script_are_served_to_anyone_under_a_strict_content_security_policy(running):
    client = _fresh(running)
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/console/console.js"' in page.text and "<script>" not in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    script = client.get("/console/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "EventSource" in script.text
    assert client.get("/console/console.css").status_code == 200


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_every_data_route_without_credentials_is_401_problem_json(running, method, path):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": f"{COOKIE}=forged.value"}):
        response = _fresh(running).request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == PROBLEM and response.json()["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_every_data_route_refuses_the_other_roles_with_403(running, method, path):
    for token in NOT_OPERATORS:
        response = _fresh(running).request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403, (token, response.text)
        assert response.headers["content-type"] == PROBLEM and response.json()["code"] == "FORBIDDEN"


def test_only_an_operator_token_opens_a_session_and_the_cookie_is_httponly_strict_and_short_lived(running):
    client = _fresh(running)
    assert client.post("/console/session", json={}).status_code == 401
    assert _sign_in(client, "not-a-token").status_code == 401
    for token in NOT_OPERATORS:
        refused = _sign_in(client, token)
        assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN" and COOKIE not in client.cookies
    assert client.post("/console/session", json={"token": "dev-operator"},
                       headers={"Authorization": "Bearer dev-operator"}).status_code == 422
    opened = _sign_in(client)
    assert opened.status_code == 200 and opened.json() == {"role": "operator", "expires_in_s": 900}
    cookie = opened.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=900"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "dev-operator" not in cookie
    assert client.get("/console/api/consumers").status_code == 200  # the cookie alone admits the page


def test_a_forged_a_stretched_or_an_expired_session_is_refused(running):
    client = _fresh(running)
    _sign_in(client)
    value = client.cookies[COOKIE]
    body, _, signature = value.partition(".")
    for bad in (f"{body}.{signature[:-2]}AA", f"{body[:-2]}AA.{signature}", "", "x.y"):
        client.cookies.set(COOKIE, bad, path="/console")
        response = client.get("/console/api/verification")
        assert response.status_code == 401 and response.json()["code"] == "UNAUTHENTICATED", bad
    past = Sessions(b"k" * 32, wall=lambda: time.time() - 3600)
    later = Sessions(b"k" * 32)
    with pytest.raises(Exception, match="expired"):
        later.principal(past.issue(Principal("operator"), digest("dev-operator")))
    assert later.principal(later.issue(Principal("operator"), digest("t"))) == (Principal("operator"), digest("t"))


def test_revoking_the_token_ends_the_sessions_it_opened_at_once(running):
    app = console_app(_embedded(running), environ={})  # a token registry of its own
    try:
        client = TestClient(app)
        _sign_in(client)
        assert client.get("/console/api/verification").status_code == 200
        app.state.console.tokens.revoke(digest("dev-operator"))
        refused = client.get("/console/api/verification")
        assert refused.status_code == 401 and "no longer accepted" in refused.json()["detail"]
    finally:
        app.state.console.close()


def test_signing_out_clears_the_session(running):
    client = _fresh(running)
    _sign_in(client)
    assert client.get("/console/api/verification").status_code == 200
    signed_out = client.delete("/console/session")
    assert signed_out.status_code == 204 and 'max-age=0' in signed_out.headers["set-cookie"].lower()
    assert client.get("/console/api/verification").status_code == 401
    assert client.delete("/console/session").status_code == 401


def test_the_consumers_view_is_what_pension_consumers_finds(running):
    looked = running.client.get("/console/api/consumers", headers=OPERATOR).json()
    deployment = running.platform.deployment()
    reader = deployment.log()
    try:
        expected = lag_rows(reader, deployment)
    finally:
        reader.close()
    assert looked["lag"] == expected and {row["group"] for row in expected} >= {"pension.tax", "pension.account"}
    assert all(row["lag"] == 0 for row in looked["lag"])
    assert [row["topic"] for row in looked["dead_letters"]] == deployment.dlq_topics()
    assert looked["waiting"] == [] and all(row["parked"] == 0 for row in looked["dead_letters"])


def test_verification_runs_when_asked_and_its_latest_result_is_kept_with_its_time(running):
    client = _fresh(running)
    _sign_in(client)
    latest = client.get("/console/api/verification").json()
    if latest["computed_at"] is None:
        assert latest == {"computed_at": None, "took_ms": None, "result": None}
    ran = client.post("/console/api/verification", json={}).json()
    assert ran["result"]["intact"] is True
    assert [s["service"] for s in ran["result"]["services"]] == ["account", "fund-account", "tax", "payout"]
    assert all(s["events"] > 0 and s["first_break"] is None for s in ran["result"]["services"])
    assert client.get("/console/api/verification").json() == ran  # kept, not recomputed
    only = client.post("/console/api/verification", json={"services": ["tax"]}).json()
    assert [s["service"] for s in only["result"]["services"]] == ["tax"]
    assert client.post("/console/api/verification", json={"services": ["nope"]}).status_code == 422


def test_reconciliation_runs_when_asked_and_finds_the_ledgers_in_agreement(running):
    ran = running.client.post("/console/api/reconciliation", json={}, headers=OPERATOR).json()
    assert ran["result"]["balanced"] is True and ran["result"]["contributions"] >= 1 and ran["result"]["breaks"] == []
    assert running.client.get("/console/api/reconciliation", headers=OPERATOR).json() == ran
    before = running.client.post("/console/api/reconciliation", json={"as_of": "2025-09-30"}, headers=OPERATOR).json()
    assert before["result"]["as_of"] == "2025-09-30" and before["result"]["contributions"] == 0


def test_the_monthly_figures_cover_the_months_up_to_the_business_month(running):
    ran = running.client.post("/console/api/monthly", json={}, headers=OPERATOR).json()
    months = ran["result"]["months"]
    assert ran["result"]["through"] == "2025-10" and [m["month"] for m in months][:2] == ["2024-11", "2024-12"]
    assert len(months) == 12 and months[-1]["total"]["contributed"] == "1000.00"
    assert months[-1]["rows"] == [{
        "bank_code": "ICBC", "region": "410100", "accounts_opened": 1, "participants_contributing": 1,
        "contributed": "1000.00", "withdrawals": 0, "withdrawn": "0.00", "tax_withheld": "0.00",
    }]
    assert all(m["total"]["contributed"] == "0.00" for m in months[:-1])
    three = running.client.post("/console/api/monthly", json={"months": 3}, headers=OPERATOR).json()
    assert [m["month"] for m in three["result"]["months"]] == ["2025-08", "2025-09", "2025-10"]


@contextmanager
def served(app) -> Iterator[str]:  # noqa: ANN001
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, timeout_s=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _events(lines: Iterator[str]) -> Iterator[dict]:
    """Server-sent events as ``{"id", "event", "data"}``; comments (keep-alives) skipped."""
    current: dict = {}
    for line in lines:
        if not line:
            if "data" in current:
                yield current
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value


def test_the_live_stream_delivers_a_contribution_made_through_the_api_within_two_seconds_id_numbers_masked(running):
    with served(running.client.app) as base, httpx.Client(base_url=base, timeout=10) as http:
        with http.stream("GET", "/console/api/events", headers=OPERATOR) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"  # watching from here on
            started = time.monotonic()
            made = http.post(f"/v1/fund-accounts/{running.fund_account_id}/contributions",
                             json={"amount": "200.00", "channel": "bank_transfer", "reference": "console"},
                             headers={"Authorization": "Bearer dev-bank-ICBC"})
            assert made.status_code == 201, made.text
            seen = []
            for event in _events(lines):
                seen.append(event)
                record = orjson.loads(event["data"])
                if record["topic"] == "pension.fund-account" and (record["event"] or {}).get("data", {}).get(
                        "contribution_id") == made.json()["contribution_id"]:
                    break
            elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert event["event"] == "ledger-event" and event["id"] == record["id"]
    assert record["summary"]["name"] == "ContributionReceived"
    assert record["summary"]["subject"] == running.participant_id
    everything = "".join(e["data"] for e in seen)
    assert not any(id_number in everything for id_number in running.id_numbers)


def test_the_live_streams_end_as_soon_as_the_server_is_asked_to_stop(running):
    app = running.platform.app()  # a console of its own: its streams end for good
    with served(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        with http.stream("GET", "/console/api/events", headers=OPERATOR) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"
            asked = time.monotonic()
            app.state.console.live.end_streams()
            list(lines)  # the stream ends: the server need not wait for it
            assert time.monotonic() - asked < 2.0
        assert http.get("/console/api/events", headers=OPERATOR).text.startswith("retry: 2000")  # and new ones end


def test_the_stream_without_follow_answers_the_events_kept_and_ends(running):
    response = running.client.get("/console/api/events", params={"follow": "false"}, headers=OPERATOR)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    records = [orjson.loads(e["data"]) for e in _events(iter(response.text.split("\n")))]
    assert records and all(r["id"] == f"{r['topic']}:{r['partition']}:{r['offset']}" for r in records)
    assert not any(id_number in response.text for id_number in running.id_numbers)
    assert any(r["topic"] == "pension.tax" for r in records)  # the taxpayer's identity, masked


def _embedded(running: Running) -> Deployment:
    """The running platform as `pension console --var` finds it."""
    return Deployment("embedded", running.platform.deployment().database_urls, str(running.var / "eventlog.db"),
                      "pension", partitions=3)


def test_pension_console_serves_the_console_for_the_deployment_of_the_operator_commands(running):
    app = console_app(_embedded(running), environ={})
    try:
        client = TestClient(app)
        assert client.get("/console").status_code == 200 and client.get("/health").json() == {"status": "up"}
        assert client.get("/console/api/consumers").status_code == 401
        assert client.get("/console/api/consumers", headers={"Authorization": "Bearer dev-bank-ICBC"}).status_code == 403
        looked = client.get("/console/api/consumers", headers=OPERATOR).json()
        assert {row["group"] for row in looked["lag"]} >= {"pension.tax"}
        assert client.post("/console/api/monthly", json={}, headers=OPERATOR).json()["result"]["through"] == "2025-10"
    finally:
        app.state.console.close()


def test_the_production_console_needs_the_operators_tokens_file_and_refuses_development_tokens(running, tmp_path):
    production = Deployment("production", running.platform.deployment().database_urls, "127.0.0.1:1", "pension",
                            partitions=3)
    with pytest.raises(DeploymentError, match="PENSION_TOKENS_FILE"):
        console_app(production, environ={})
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(orjson.dumps({"tokens": [
        {"sha256": digest("ops-secret-1"), "role": "operator"}]}))
    app = console_app(production, environ={"PENSION_TOKENS_FILE": str(tokens)})
    try:
        client = TestClient(app)
        assert _sign_in(client, "dev-operator").status_code == 401
        assert _sign_in(client, "ops-secret-1").status_code == 200
        assert client.post("/console/api/verification", json={}).json()["result"]["intact"] is True
        tokens.write_bytes(orjson.dumps({"tokens": []}))  # the operator's token taken out of the file
        assert client.get("/console/api/verification").status_code == 401  # and its session ends with it
    finally:
        app.state.console.close()
