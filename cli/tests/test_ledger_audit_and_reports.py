"""`pension ledger verify`, `reconcile`, `report monthly`, `events tail` and `replay` against a
running embedded platform that has seen registrations, contributions and a payout."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from operator_support.scenario import Running, pension
from pension_cli.deployment import definitions
from pension_cli.replay import ShadowReplay, replay_engine
from pension_shared.ledger import EventStore
from pension_shared.pii import mask_id_number


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    running = Running.start(tmp_path_factory.mktemp("operated"))
    running.set_clock("2025-10-01T10:00:00+08:00")
    first, first_account = running.register_and_open("ICBC", "410100")
    running.contribute(first_account, "1000.00")
    second, second_account = running.register_and_open("CCB", "320100")
    running.contribute(second_account, "500.50", bank="CCB")
    running.withdraw_everything(first, "410100")
    running.quiet()
    running.participants = (first, second)
    yield running
    running.stop()


def test_ledger_verify_reports_every_service_intact(running, capsys):
    code, out = pension(capsys, "ledger", "verify", "--var", str(running.var))
    assert code == 0, out
    for service in ("account", "fund-account", "tax", "payout"):
        assert f"{service:<13} intact" in out


def test_reconcile_finds_the_four_ledgers_in_agreement(running, capsys):
    code, out = pension(capsys, "reconcile", "--json", "--var", str(running.var))
    result = orjson.loads(out)
    assert code == 0 and result["balanced"], out
    assert (result["participant_years"], result["contributions"], result["payments"], result["instalments"]) == (2, 2, 1, 1)


def test_reconcile_as_of_a_day_before_anything_happened_has_nothing_to_check(running, capsys):
    code, out = pension(capsys, "reconcile", "--as-of", "2025-09-30", "--var", str(running.var))
    assert code == 0 and "0 participant-years, 0 contributions" in out


def test_monthly_report_gives_the_figures_per_bank_and_region(running, capsys):
    code, out = pension(capsys, "report", "monthly", "--month", "2025-10", "--json", "--var", str(running.var))
    assert code == 0
    report = orjson.loads(out)
    rows = {(r["bank_code"], r["region"]): r for r in report["rows"]}
    assert rows[("ICBC", "410100")] == {
        "bank_code": "ICBC", "region": "410100", "accounts_opened": 1, "participants_contributing": 1,
        "contributed": "1000.00", "withdrawals": 1, "withdrawn": "1000.00", "tax_withheld": "30.00",
    }
    assert rows[("CCB", "320100")]["contributed"] == "500.50" and rows[("CCB", "320100")]["withdrawals"] == 0
    assert report["total"]["accounts_opened"] == 2 and report["total"]["participants_contributing"] == 2
    assert report["total"]["tax_withheld"] == "30.00"
    code, out = pension(capsys, "report", "monthly", "--month", "2025-09", "--var", str(running.var))
    assert code == 0 and "total" in out and "ICBC" not in out


def test_events_tail_prints_masked_json_lines_and_stops_without_follow(running, capsys):
    code, out = pension(capsys, "events", "tail", "--topic", "pension.tax", "--json", "--no-follow", "--var", str(running.var))
    assert code == 0
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert {line["event"]["type"] for line in lines} >= {"cn.pension.tax.TaxpayerRegistered.v1",
                                                         "cn.pension.tax.DeductionVoucherIssued.v1"}
    for id_number in running.id_numbers:
        assert id_number not in out
        assert mask_id_number(id_number) in out


def test_events_tail_filters_by_participant_and_type(running, capsys):
    first, _ = running.participants
    code, out = pension(capsys, "events", "tail", "--all", "--participant", first, "--type", "ContributionReceived",
                        "--no-follow", "--var", str(running.var))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 and "pension.fund-account" in lines[0] and f"subject={first}" in lines[0]


def test_replay_finds_the_live_read_models_identical_to_their_events(running, capsys):
    for service in ("account", "fund-account", "tax", "payout"):
        code, out = pension(capsys, "replay", "--service", service, "--var", str(running.var))
        assert code == 0 and "read models identical" in out, out


def test_replay_reports_a_damaged_read_model_and_swap_repairs_it(running, capsys):
    first, _ = running.participants
    with running.platform.context("account").engine.begin() as conn:
        conn.execute(sa.text("UPDATE participants SET status = 'damaged' WHERE participant_id = :p"), {"p": first})

    code, out = pension(capsys, "replay", "--service", "account", "--var", str(running.var))
    assert code == 1 and "participants" in out and "DIFFERENT" in out and "damaged" in out

    code, out = pension(capsys, "replay", "--service", "account", "--swap", "--var", str(running.var))
    assert code == 0 and "swapped in" in out
    assert running.get(f"/v1/participants/{first}")["status"] == "receiving"
    code, out = pension(capsys, "replay", "--service", "account", "--var", str(running.var))
    assert code == 0 and "read models identical" in out


def test_replay_catches_up_with_events_appended_while_it_ran_and_loses_none(running):
    fund_account_id = running.get(f"/v1/participants/{running.participants[1]}")["fund_account"]["fund_account_id"]
    ctx = running.platform.context("fund-account")
    store = EventStore(service="fund-account", topic="pension.fund-account",
                       projections=definitions()["fund-account"].projections())
    engine = replay_engine(str(ctx.engine.url))
    try:
        result = ShadowReplay(store, engine).run(
            swap=True, before_lock=lambda: running.contribute(fund_account_id, "1.00", bank="CCB"))
    finally:
        engine.dispose()
    assert result.caught_up >= 1 and result.identical and result.swapped
    account = running.get(f"/v1/fund-accounts/{fund_account_id}", {"Authorization": "Bearer dev-bank-CCB"})
    assert account["cash_balance"] == "501.50"
