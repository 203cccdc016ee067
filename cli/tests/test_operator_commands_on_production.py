"""The operator commands against the production adapters: PostgreSQL per service and Kafka."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from operator_support.scenario import OPERATOR, eventually, pension, random_id_number
from pension_cli.platform import SERVICES, kafka_platform
from pension_shared.clock import SHANGHAI, FixedClock
from pension_shared.schema import events
from pension_shared.testing import random_id

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.fixture
def production(new_postgres_database, kafka_bootstrap, monkeypatch):
    urls = {definition.name: new_postgres_database() for definition in SERVICES}
    prefix, topic_prefix = random_id("ops-"), random_id("t") + "."
    platform = kafka_platform(urls, kafka_bootstrap, clock=FixedClock(datetime(2025, 10, 1, 9, 0, tzinfo=SHANGHAI)),
                              group_prefix=prefix, topic_prefix=topic_prefix)
    platform.migrate()
    platform.start_workers()
    for name, url in urls.items():
        monkeypatch.setenv(f"PENSION_{name.upper().replace('-', '_')}_DATABASE_URL", url)
    monkeypatch.setenv("PENSION_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("PENSION_CONSUMER_GROUP_PREFIX", prefix)
    monkeypatch.setenv("PENSION_TOPIC_PREFIX", topic_prefix)
    yield platform, prefix, topic_prefix
    platform.stop()


def _register(client: TestClient) -> str:
    created = client.post("/v1/participants", headers={"Authorization": "Bearer dev-bank-ICBC"}, json={
        "id_number": random_id_number(), "name": "张三", "insurance_type": "employee", "insured_region": "410100",
        "ss_card_account": {"bank_code": "ICBC", "account_number": "6222020200112233"}, "channel": "bank",
    })
    assert created.status_code == 201, created.text
    participant_id = created.json()["participant_id"]
    for service in ("fund-account", "tax", "payout"):
        eventually(lambda: client.get(f"/v1/ops/{service}/participants/{participant_id}", headers=OPERATOR).status_code == 200,
                   timeout_s=60)
    return participant_id


def test_verify_consumers_and_replay_work_on_postgresql_and_kafka(production, capsys):
    platform, prefix, topic_prefix = production
    client = TestClient(platform.app())
    participant_id = _register(client)
    # Readiness is a probe: a broker check that timed out under load may report false until the
    # next one (cached for a few seconds), so wait for it rather than sample it once.
    ready = eventually(lambda: (r := client.get("/ready")).status_code == 200 and r, timeout_s=30)
    assert ready.json()["services"]["broker"] is True, ready.text

    code, out = pension(capsys, "ledger", "verify", "--target", "production")
    assert code == 0 and out.count(" intact ") == 4, out

    code, out = pension(capsys, "consumers", "--target", "production", "--json")
    report = orjson.loads(out)
    groups = {row["group"] for row in report["lag"]}
    assert groups == {f"{prefix}.account", f"{prefix}.fund-account", f"{prefix}.tax", f"{prefix}.payout"}
    committed = sum(r["committed"] for r in report["lag"]
                    if r["group"] == f"{prefix}.tax" and r["topic"] == f"{topic_prefix}pension.account")
    assert committed > 0 and all(r["end"] >= r["committed"] for r in report["lag"])
    assert {row["topic"] for row in report["dead_letters"]} == {
        f"{topic_prefix}pension.{s}.dlq" for s in ("account", "fund-account", "tax", "payout")}
    assert all(row["parked"] == 0 for row in report["dead_letters"])

    code, out = pension(capsys, "events", "tail", "--target", "production", "--participant", participant_id, "--json",
                        "--no-follow")
    types = {orjson.loads(line)["event"]["type"] for line in out.splitlines()}
    assert code == 0 and "cn.pension.account.ParticipantRegistered.v1" in types and "cn.pension.tax.TaxpayerRegistered.v1" in types
    assert "*" in out

    code, out = pension(capsys, "replay", "--service", "account", "--target", "production")
    assert code == 0 and "read models identical" in out, out
    code, out = pension(capsys, "replay", "--service", "tax", "--swap", "--target", "production")
    assert code == 0 and "swapped in" in out, out

    with platform.context("account").engine.begin() as conn:
        registered = conn.execute(sa.select(events).where(events.c.subject == participant_id)
                                  .order_by(events.c.position).limit(1)).one()
        conn.execute(events.update().where(events.c.position == registered.position).values(time="2020-01-01T00:00:00+08:00"))
    code, out = pension(capsys, "ledger", "verify", "--target", "production", "--service", "account")
    assert code == 1 and f"event {registered.event_id}: content does not match its hash" in out


def test_the_console_follows_the_kafka_topics_live_and_reads_the_postgresql_ledgers(production):
    platform, prefix, topic_prefix = production
    client = TestClient(platform.app())
    _register(client)
    with client.stream("GET", "/console/api/events", headers=OPERATOR) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"  # watching from here on
        participant_id = _register(client)
        for line in lines:
            if line.startswith("data: "):
                record = orjson.loads(line[len("data: "):])
                if record["topic"] == f"{topic_prefix}pension.tax" and record["summary"]["subject"] == participant_id:
                    break
    assert record["summary"]["name"] == "TaxpayerRegistered" and "*" in record["event"]["data"]["id_number"]

    looked = client.get("/console/api/consumers", headers=OPERATOR).json()
    assert {row["group"] for row in looked["lag"]} == {f"{prefix}.{s}" for s in ("account", "fund-account", "tax", "payout")}
    assert [row["topic"] for row in looked["dead_letters"]] == [
        f"{topic_prefix}pension.{s}.dlq" for s in ("account", "fund-account", "tax", "payout")]
    verified = client.post("/console/api/verification", json={}, headers=OPERATOR).json()["result"]
    assert verified["intact"] and all(s["events"] > 0 for s in verified["services"])
    assert client.post("/console/api/reconciliation", json={}, headers=OPERATOR).json()["result"]["balanced"]
