"""Metrics, readiness and correlated logs of the service apps (pension_shared.observability)."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from fastapi.testclient import TestClient

from operator_support.scenario import OPERATOR, Running, eventually, random_id_number
from pension_account.bootstrap import DEFINITION as ACCOUNT
from pension_shared.auth import TokenRegistry
from pension_shared.observability import JsonLogFormatter
from pension_shared.runtime import build_app, build_context
from pension_shared.settings import ServiceSettings


@pytest.fixture
def running(tmp_path):
    running = Running.start(tmp_path)
    yield running
    running.stop()


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in\n{text}")


def test_metrics_count_requests_per_route_and_events_appended_and_show_lag_backlog_and_dlq_depth(running):
    running.set_clock("2025-10-01T10:00:00+08:00")
    participant_id, _ = running.register_and_open()
    running.client.get(f"/v1/participants/{participant_id}", headers=OPERATOR)
    running.client.get("/v1/participants/P-NOBODY", headers=OPERATOR)
    running.quiet()

    text = running.client.get("/metrics").text

    assert _sample(text, "pension_http_requests_total", method="POST", route="/v1/participants", status="201") == 1
    assert _sample(text, "pension_http_requests_total", method="GET", route="/v1/participants/{participant_id}",
                   status="404") == 1
    assert _sample(text, "pension_http_request_duration_seconds_count", method="POST", route="/v1/fund-accounts",
                   status="201") == 1
    assert _sample(text, "pension_events_appended_total", service="account") >= 2
    assert _sample(text, "pension_events_appended_total", service="fund-account") >= 2
    assert _sample(text, "pension_relay_backlog", service="tax") == 0
    assert _sample(text, "pension_consumer_lag", group="pension.tax", topic="pension.account") == 0
    assert _sample(text, "pension_dlq_depth", topic="pension.fund-account.dlq") == 0


def test_ready_and_health_on_the_embedded_platform(running):
    assert running.client.get("/health").json() == {"status": "up"}
    ready = running.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["services"]["broker"] is True


def test_ready_is_false_quickly_while_the_broker_is_unreachable(tmp_path):
    settings = ServiceSettings(env="test", database_url=f"sqlite:///{tmp_path / 'account.db'}", transport="kafka",
                               kafka_bootstrap="127.0.0.1:9")
    ctx = build_context(ACCOUNT, settings, tokens=TokenRegistry.from_file(None, development=True))
    ctx.migrate()
    client = TestClient(build_app([ctx], title="account"))

    started = time.monotonic()
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["services"] == {"account": True, "broker": False}
    assert time.monotonic() - started < 4
    started = time.monotonic()
    assert client.get("/ready").status_code == 503 and time.monotonic() - started < 0.5, "the answer is cached"
    ctx.engine.dispose()


def test_one_request_s_correlation_id_follows_it_through_every_consumer_s_logs(running):
    lines: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Capture()
    handler.setFormatter(JsonLogFormatter())
    consumer_log = logging.getLogger("pension_shared.consumer")
    consumer_log.addHandler(handler)
    consumer_log.setLevel(logging.DEBUG)
    try:
        created = running.client.post("/v1/participants", headers={
            "Authorization": "Bearer dev-bank-ICBC", "X-Correlation-Id": "req-7f3a"}, json={
            "id_number": random_id_number(), "name": "张三", "insurance_type": "employee", "insured_region": "410100",
            "ss_card_account": {"bank_code": "ICBC", "account_number": "6222020200112233"}, "channel": "bank",
        })
        assert created.headers["X-Correlation-Id"] == "req-7f3a"

        def consumers_seen() -> set[str]:
            return {re.match(r"consumer (\S+):", line["message"]).group(1)
                    for line in list(lines) if line["correlation_id"] == "req-7f3a"}

        assert eventually(lambda: consumers_seen() >= {"pension.fund-account", "pension.tax", "pension.payout"})
    finally:
        consumer_log.removeHandler(handler)
        consumer_log.setLevel(logging.NOTSET)
