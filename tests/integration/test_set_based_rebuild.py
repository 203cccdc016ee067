"""Each service's set-based rebuild (the read models computed by PostgreSQL from the stored
events) gives, row for row, the tables its projections kept while the platform lived, and those
the Python rebuild gives.

The four services run on PostgreSQL databases of their own, over the embedded log, through
every flow the event contract test drives (tests/support/contract_scenario.py): vouchers voided,
a withholding reversed, bank changes completed and aborted (a second fund account noted), deaths
and inheritances, applications rejected, sent back and approved, a payment compensated, the year
closed with its statements; then a holding sold out and bought again."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pension_cli.platform import SERVICES, embedded_platform
from pension_shared import bulk_rebuild
from pension_shared.bulk_rebuild import Load
from pension_shared.testing import postgres_databases, rebuilt_both_ways
from tests.support.contract_scenario import Workers, bank, drive_every_flow, member

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def lived(tmp_path_factory, postgres_server_url):
    """The platform on PostgreSQL after every flow, its workers stopped."""
    with postgres_databases(postgres_server_url) as new_database:
        urls = {definition.name: new_database() for definition in SERVICES}
        platform = embedded_platform(tmp_path_factory.mktemp("set-based"), database_urls=urls)
        try:
            platform.migrate()
            platform.seed()
            workers = Workers(platform)
            workers.start()
            try:
                client = TestClient(platform.app())
                drive_every_flow(platform, client, workers)
                _sell_out_and_buy_again(client)
            finally:
                workers.stop()
            yield platform
        finally:
            platform.stop()


def _sell_out_and_buy_again(client: TestClient) -> None:
    investor = member(client, "BOC", "8000.00")
    account = f"/v1/fund-accounts/{investor.fund_account_id}"
    product = client.get("/v1/products", headers=bank("BOC")).json()["items"][0]["product_code"]

    def held() -> str | None:
        holdings = client.get(account, headers=bank("BOC")).json()["holdings"]
        return next((h["units"] for h in holdings if h["product_code"] == product), None)

    def post(path: str, body: dict) -> None:
        response = client.post(f"{account}/{path}", json={"product_code": product, **body}, headers=bank("BOC"))
        assert response.status_code == 201, response.text

    post("purchases", {"amount": "1000.00"})
    post("purchases", {"amount": "500.00"})
    post("redemptions", {"units": "0.500000", "proceeds": "0.50"})
    post("redemptions", {"units": held(), "proceeds": "1499.50"})
    assert held() is None
    post("purchases", {"amount": "300.00"})
    assert held() is not None


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "a-part-per-event"])
@pytest.mark.parametrize("service", [definition.name for definition in SERVICES])
def test_the_set_based_rebuild_gives_the_rows_the_projections_kept_and_the_python_rebuild_gives(
        lived, service, cut, monkeypatch):
    """Whole, as a ledger this small is taken; and with a load by event taken in a part per
    stored event, as a large one is taken in parts (an event and a later one changing the row it
    made, a voucher and its voiding say, are then read by different parts)."""
    ctx = lived.context(service)
    if cut:
        monkeypatch.setattr(bulk_rebuild, "_cuts", _every_event)
    with ctx.engine.begin() as conn:
        live, set_based, python = rebuilt_both_ways(conn, ctx.store)
        conn.rollback()
    assert all(live.values()), {name: len(rows) for name, rows in live.items()}
    for name in live:
        assert set_based[name] == live[name], f"{service}.{name}: the set-based rebuild differs from the live rows"
        assert python[name] == live[name], f"{service}.{name}: the Python rebuild differs from the live rows"


def _every_event(conn) -> list[tuple[int, int]]:  # noqa: ANN001
    """Where each stored event but the first is, (block, offset): cuts giving a part per event."""
    stored = conn.exec_driver_sql("SELECT CAST(CAST(ctid AS text) AS point) FROM events").scalars()
    return sorted((int(at.split(",")[0][1:]), int(at.split(",")[1][:-1])) for at in stored)[1:]


def test_the_history_holds_the_awkward_cases(lived):
    """What the comparison above is worth: the rows the hard parts of the folds make are there."""
    def rows(service: str, sql: str) -> list[tuple]:
        with lived.context(service).engine.connect() as conn:
            return conn.exec_driver_sql(sql).all()

    assert rows("tax", "SELECT 1 FROM vouchers WHERE status = 'voided'")
    assert rows("tax", "SELECT 1 FROM withholdings WHERE status = 'reversed'")
    assert rows("tax", "SELECT 1 FROM tax_years WHERE statement_issued_at IS NOT NULL")
    assert rows("tax", "SELECT participant_id FROM holding_banks") and rows(
        "tax", "SELECT subject FROM events WHERE type = 'cn.pension.tax.FundAccountNoted.v1' GROUP BY subject HAVING count(*) > 1")
    assert {status for status, in rows("fund-account", "SELECT DISTINCT status FROM bank_changes")} == {"completed", "aborted"}
    assert {status for status, in rows("fund-account", "SELECT DISTINCT status FROM fund_accounts")} >= {"active", "closed"}
    assert rows("fund-account", "SELECT 1 FROM holdings")
    assert rows("fund-account", "SELECT 1 FROM events WHERE type = 'cn.pension.fund-account.ProductRedeemed.v1'")
    assert {status for status, in rows("account", "SELECT DISTINCT status FROM participants")} >= {
        "active", "receiving", "deceased"}
    assert {status for status, in rows("account", "SELECT DISTINCT status FROM withdrawal_applications")} >= {
        "approved", "rejected"}
    # A year's figures are its last contribution's, of several (the records they are found among).
    assert rows("account", "SELECT 1 FROM participant_records WHERE kind = 'contribution' "
                           "GROUP BY participant_id, year HAVING count(*) > 1")
    assert rows("account", "SELECT 1 FROM participant_records WHERE kind = 'bank_change'")
    assert {kind for kind, in rows("payout", "SELECT DISTINCT view::json->>'kind' FROM withdrawals")} == {
        "withdrawal", "inheritance"}
    assert rows("payout", """SELECT 1 FROM withdrawals WHERE strpos(view, '"status":"compensated"') > 0""")


def test_each_part_of_a_load_divided_by_event_reads_only_its_own_blocks_of_the_events(lived):
    """The loads taken in parts are those of a row per event. Each part's range of blocks is a
    condition of the scan of the events, under the JSON parsing (not a filter of parsed rows),
    and the parts give the whole load's rows, each once. (On a ledger this small the planner may
    read a range with a sequential scan, or by the index of types with the range as a filter of
    that scan; on a large one, with a TID range scan: shared/tests.)"""
    divided = {(service, load.table.name): (lived.context(service), load) for service in (d.name for d in SERVICES)
               for projection in lived.context(service).store.projections for load in projection.set_based.steps
               if isinstance(load, Load) and load.per_event}
    assert set(divided) == {("account", "participant_records"), ("tax", "vouchers"), ("tax", "withholdings")}
    for (service, table), (ctx, load) in divided.items():
        with ctx.engine.connect() as conn:
            parts = load.parts([(1, 0), (2, 0)])
            plans = ["\n".join(conn.exec_driver_sql(f"EXPLAIN {part.rows}").scalars()) for part in parts]
            whole = sorted(conn.exec_driver_sql(load.rows).all())
            taken = [row for part in parts for row in conn.exec_driver_sql(part.rows).all()]
        assert len(parts) == 3 and whole and sorted(taken) == whole, f"{service}.{table}"
        for plan in plans:
            assert re.search(r"Scan (using \w+ )?on events\b.*\n(\s+(Index|Recheck) Cond: .*\n)?\s+(TID Cond|Filter): \(+ctid",
                             plan), f"{service}.{table}: {plan}"
