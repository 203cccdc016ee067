"""The tax bureau's feed on the production shape (PostgreSQL + Kafka): a year of one participant's
contributions becomes vouchers that sum exactly to what was contributed and a matching statement;
kcat reads the same vouchers off pension.tax; the reference consumer, killed mid-stream and
restarted, ends with the same totals as one that ran through; replaying the tax service from zero
gives the same voucher numbers and statements."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pension_cli.platform import SERVICES, kafka_platform
from pension_shared.clock import SHANGHAI, FixedClock
from pension_shared.runtime import build_context
from pension_shared.settings import ServiceSettings
from pension_shared.testing import random_id
from pension_tax.adapters.tables import tax_years, vouchers as vouchers_table
from pension_tax.bootstrap import DEFINITION as TAX
from tests.support.requests import eventually
from tests.support.tax_scenario import (
    REFERENCE_CONSUMER, TAX_BUREAU, contribute, open_fund_account, register, vouchers, wait_for_vouchers,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

MONTHLY = "1000.00"


PREFIX = random_id("t") + "."
"""This module's topics: the feed is ``PREFIX + "pension.tax"``, so the tests read only their own
events, not what other tests left on a shared broker."""
TAX_TOPIC = PREFIX + "pension.tax"


@pytest.fixture(scope="module")
def year_on_kafka(postgres_server_url, kafka_bootstrap):
    """One participant contributing every month of 2025, the year then closed."""
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    names = [random_id("t_") for _ in range(len(SERVICES) + 1)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = lambda name: sa.engine.make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)  # noqa: E731
    clock = FixedClock(datetime(2025, 1, 2, 9, 0, tzinfo=SHANGHAI))
    platform = kafka_platform({d.name: url(n) for d, n in zip(SERVICES, names)}, kafka_bootstrap, clock=clock,
                              group_prefix=random_id("taxfeed-"), topic_prefix=PREFIX)
    platform.migrate()
    platform.seed()
    platform.start_workers()
    try:
        client = TestClient(platform.app())
        participant = register(client)
        open_fund_account(client, participant)
        for month in range(1, 13):
            clock.set(datetime(2025, month, 15, 10, 0, tzinfo=SHANGHAI))
            contribute(client, participant, MONTHLY)
        wait_for_vouchers(client, participant.participant_id, 12, timeout_s=120)
        clock.set(datetime(2026, 1, 1, 0, 0, 30, tzinfo=SHANGHAI))
        path = f"/v1/tax/statements/{participant.participant_id}/2025"
        eventually(lambda: client.get(path, headers=TAX_BUREAU).json()["status"] == "issued", timeout_s=60)
        yield platform, client, participant, url(names[-1])
    finally:
        platform.stop()
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_years_vouchers_sum_exactly_to_what_was_contributed_and_the_statement_matches(year_on_kafka):
    _, client, participant, _ = year_on_kafka
    items = vouchers(client, participant.participant_id, 2025)
    assert len(items) == 12
    assert sum(_fen(v["amount"]) for v in items) == 1_200_000
    assert [v["cumulative_amount"] for v in items] == [f"{1000 * n}.00" for n in range(1, 13)]
    assert sum(_fen(v["deductible_amount"]) for v in items) == 1_200_000
    statement = client.get(f"/v1/tax/statements/{participant.participant_id}/2025", headers=TAX_BUREAU).json()
    assert (statement["contributed"], statement["deductible"], statement["tax_withheld"], statement["status"]) == (
        "12000.00", "12000.00", "0.00", "issued")


def test_kcat_reads_the_same_vouchers_from_pension_tax(year_on_kafka, kafka_bootstrap):
    _, client, participant, _ = year_on_kafka
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: run scripts/ensure-tools.sh"
    result = subprocess.run([kcat, "-b", kafka_bootstrap, "-C", "-t", TAX_TOPIC, "-o", "beginning", "-e", "-J", "-q"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(message["payload"]) for message in map(json.loads, result.stdout.splitlines())
              if message.get("key") == participant.participant_id]
    issued = [e for e in events if e["type"] == "cn.pension.tax.DeductionVoucherIssued.v1"]
    assert [e["data"]["voucher_no"] for e in issued] == [v["voucher_no"] for v in vouchers(client, participant.participant_id)]
    assert all(e["data"]["id_number"] == participant.id_number for e in issued)
    [statement] = [e for e in events if e["type"] == "cn.pension.tax.AnnualTaxStatementIssued.v1"]
    assert statement["data"]["contributed"] == sum(e["data"]["amount"] for e in issued) == 1_200_000


def test_the_reference_consumer_killed_mid_stream_ends_with_the_same_totals(year_on_kafka, kafka_bootstrap, tmp_path):
    _, _, participant, _ = year_on_kafka
    through = _run_consumer(kafka_bootstrap, tmp_path / "through.db", random_id("bureau-"), "--from-beginning")
    assert through.returncode == 0, through.stderr
    assert "No partition metadata" not in through.stderr, "assigned before it knew the topic's partitions"

    group, killed_db = random_id("bureau-"), tmp_path / "killed.db"
    slow = _start_consumer(kafka_bootstrap, killed_db, group, "--batch-size", "1", "--pause-ms", "150")
    try:
        eventually(lambda: _stored(killed_db) >= 4, timeout_s=60)
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=10)
    interrupted_at = _stored(killed_db)
    restarted = _run_consumer(kafka_bootstrap, killed_db, group)
    assert restarted.returncode == 0, restarted.stderr

    consumer_totals = [_totals(db) for db in (tmp_path / "through.db", killed_db)]
    key = (participant.participant_id, 2025)
    assert consumer_totals[0][key] == {"contributed": 1_200_000, "deductible": 1_200_000, "withdrawn_gross": 0,
                                       "tax_withheld": 0}
    assert consumer_totals[1][key] == consumer_totals[0][key]
    assert _stored(killed_db) > interrupted_at
    # Exactly the tax service's ledger of this taxpayer was applied, in order, by both. (On a broker
    # shared by test runs, another run's tax service re-derives earlier taxpayers' streams with new
    # event ids: the consumer rejects such a fork as a chain break instead of counting it twice.)
    platform = year_on_kafka[0]
    tax = platform.context("tax")
    stream_id = f"taxpayer-{participant.participant_id}"
    with tax.engine.connect() as conn:
        ledger = [e.id for e in tax.store.read_stream(conn, stream_id, limit=10_000)]
    for db in (tmp_path / "through.db", killed_db):
        with sqlite3.connect(db) as conn:
            applied = [row[0] for row in conn.execute(
                "SELECT event_id FROM processed_events WHERE streamid = ? ORDER BY sequence", (stream_id,))]
        assert applied == ledger


def test_replaying_the_tax_service_from_zero_gives_the_same_vouchers_and_statements(year_on_kafka, kafka_bootstrap):
    platform, client, participant, spare_url = year_on_kafka
    tax = platform.context("tax")
    with tax.engine.begin() as conn:
        before = _tax_rows(conn, participant.participant_id)
        tax.store.rebuild_projections(conn)
        after = _tax_rows(conn, participant.participant_id)
    assert before == after

    replica = build_context(TAX, ServiceSettings(env="test", database_url=spare_url, transport="kafka",
                                                 kafka_bootstrap=kafka_bootstrap,
                                                 consumer_group_prefix=random_id("tax-replay-"), topic_prefix=PREFIX),
                            clock=platform.context("account").clock, transport=platform.transport)
    replica.migrate()
    consumer = replica.consumer()
    try:
        def replayed() -> list | None:
            consumer.consume_once(timeout_s=1.0)
            with replica.engine.connect() as conn:
                rows = _tax_rows(conn, participant.participant_id)
            return rows if len(rows[0]) == 12 else None

        replayed_rows = eventually(replayed, timeout_s=120, interval_s=0)
    finally:
        consumer.close()
    assert [v[:8] for v in replayed_rows[0]] == [v[:8] for v in before[0]]
    statement = client.get(f"/v1/tax/statements/{participant.participant_id}/2025", headers=TAX_BUREAU).json()
    assert replayed_rows[1][0][2:4] == (_fen(statement["contributed"]), _fen(statement["deductible"]))
    replica.engine.dispose()


def _tax_rows(conn, participant_id: str) -> tuple[list, list]:
    found = conn.execute(sa.select(
        vouchers_table.c.voucher_no, vouchers_table.c.contribution_id, vouchers_table.c.year, vouchers_table.c.amount,
        vouchers_table.c.cumulative_amount, vouchers_table.c.deductible_amount, vouchers_table.c.verification_code,
        vouchers_table.c.id_number, vouchers_table.c.status,
    ).where(vouchers_table.c.participant_id == participant_id).order_by(vouchers_table.c.cumulative_amount)).all()
    years = conn.execute(sa.select(tax_years.c.participant_id, tax_years.c.year, tax_years.c.contributed,
                                   tax_years.c.deductible, tax_years.c.withdrawn_gross, tax_years.c.tax_withheld)
                         .where(tax_years.c.participant_id == participant_id)).all()
    return [tuple(r) for r in found], [tuple(r) for r in years]


def _fen(yuan: str) -> int:
    whole, cents = yuan.split(".")
    return int(whole) * 100 + int(cents)


def _command(bootstrap: str, db, group: str, *extra: str) -> list[str]:
    return [sys.executable, str(REFERENCE_CONSUMER), "--bootstrap", bootstrap, "--topic", TAX_TOPIC, "--group", group,
            "--db", str(db), *extra]


def _start_consumer(bootstrap: str, db, group: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_command(bootstrap, db, group, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _run_consumer(bootstrap: str, db, group: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(bootstrap, db, group, "--exit-when-idle", "8", *extra),
                          capture_output=True, text=True, timeout=240)


def _stored(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM processed_events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _totals(db) -> dict:
    from tests.support.tax_scenario import reference_consumer

    conn = sqlite3.connect(db)
    try:
        return reference_consumer().totals(conn)
    finally:
        conn.close()
