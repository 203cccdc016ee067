"""The tax service in the embedded platform: vouchers from real contributions, the public voucher
check, the withholding return from payout events, and the year's statement issued by the job."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pension_cli.platform import embedded_platform
from pension_shared.envelope import canonical_json
from pension_shared.ledger import SNAPSHOT_EVERY
from pension_shared.schema import snapshots
from pension_tax.application.policies import load_taxpayer
from pension_tax.domain.events import taxpayer_stream
from pension_tax.domain.taxpayer import Taxpayer
from pension_tax.adapters.tables import metadata as read_models, withholdings
from tests.support.requests import auth, eventually
from tests.support.tax_scenario import (
    OPERATOR, TAX_BUREAU, contribute, open_fund_account, payout_made, payout_reversed, register, vouchers,
    wait_for_vouchers,
)

ICBC, BOC = auth("dev-bank-ICBC"), auth("dev-bank-BOC")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = embedded_platform(tmp_path_factory.mktemp("tax-api"))
    platform.migrate()
    platform.seed()
    platform.start_workers()
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def client(platform):
    client = TestClient(platform.app())
    assert client.put("/v1/ops/clock", json={"now": "2025-03-10T10:00:00+08:00"}, headers=OPERATOR).status_code == 200
    return client


@pytest.fixture(scope="module")
def taxpayer(client):
    participant = register(client)
    open_fund_account(client, participant)
    for amount in ("5000.00", "4000.00", "3000.00"):
        contribute(client, participant, amount)
    wait_for_vouchers(client, participant.participant_id, 3)
    return participant


def test_each_contribution_has_a_voucher_with_the_running_total(client, taxpayer):
    items = vouchers(client, taxpayer.participant_id, 2025)
    assert [(v["amount"], v["cumulative_amount"], v["deductible_amount"]) for v in items] == [
        ("5000.00", "5000.00", "5000.00"), ("4000.00", "9000.00", "4000.00"), ("3000.00", "12000.00", "3000.00"),
    ]
    assert all(v["id_number"] == taxpayer.id_number and v["name"] == "张三" for v in items)
    assert len({v["voucher_no"] for v in items}) == 3
    assert vouchers(client, taxpayer.participant_id, 2026) == []


def test_vouchers_are_read_by_the_holding_bank_and_operators_but_not_by_another_bank(client, taxpayer):
    query = f"/v1/tax/vouchers?participant_id={taxpayer.participant_id}"
    assert len(client.get(query, headers=ICBC).json()["items"]) == 3
    other = client.get(query, headers=BOC)
    assert other.status_code == 404 and other.json()["code"] == "PARTICIPANT_NOT_FOUND"
    masked = client.get(query, headers=OPERATOR).json()["items"][0]["id_number"]
    assert "*" in masked and masked != taxpayer.id_number
    assert client.get(query).status_code == 401
    assert client.get(query, headers=auth("dev-agency-410100")).status_code == 403


def test_lists_page_with_a_cursor(client, taxpayer):
    first = client.get(f"/v1/tax/vouchers?participant_id={taxpayer.participant_id}&limit=2", headers=TAX_BUREAU).json()
    assert len(first["items"]) == 2 and first["next"]
    rest = client.get(f"/v1/tax/vouchers?participant_id={taxpayer.participant_id}&limit=2&after={first['next']}",
                      headers=TAX_BUREAU).json()
    assert len(rest["items"]) == 1 and rest["next"] is None


def test_anyone_holding_a_voucher_can_check_it_with_its_code(client, taxpayer):
    voucher = vouchers(client, taxpayer.participant_id)[0]
    checked = client.get(f"/v1/tax/vouchers/{voucher['voucher_no']}?code={voucher['verification_code']}")
    assert checked.status_code == 200
    assert checked.json()["amount"] == voucher["amount"] and "*" in checked.json()["id_number"]
    assert client.get(f"/v1/tax/vouchers/{voucher['voucher_no']}?code=000000000000").status_code == 404
    assert client.get(f"/v1/tax/vouchers/{voucher['voucher_no']}").status_code == 404
    assert client.get(f"/v1/tax/vouchers/V2025NOSUCHVOUCHER?code={voucher['verification_code']}").status_code == 404


def test_a_taxpayer_with_a_long_history_decides_from_snapshots_as_from_every_event(platform, client):
    participant = register(client)
    open_fund_account(client, participant)
    for _ in range(2 * SNAPSHOT_EVERY + 30):
        contribute(client, participant, "1.00")
    ctx = platform.context("tax")

    def every_voucher_issued():
        with ctx.engine.connect() as conn:
            stream, taxpayer = load_taxpayer(conn, ctx.store, participant.participant_id)
            every = ctx.store.load(conn, taxpayer_stream(participant.participant_id))
        return len(taxpayer.vouchers) == 2 * SNAPSHOT_EVERY + 30 and (stream, taxpayer, every)

    stream, taxpayer, every = eventually(every_voucher_issued, timeout_s=120)
    assert stream.snapshot is not None and stream.snapshot.version >= 2 * SNAPSHOT_EVERY
    assert len(stream.events) < SNAPSHOT_EVERY and stream.version == every.version
    assert taxpayer == Taxpayer.from_events(participant.participant_id,
                                            [(e.event_type.name, e.data) for e in every.events])
    contributions = 2 * SNAPSHOT_EVERY + 30
    assert (taxpayer.years[2025].contributed, taxpayer.years[2025].vouchers) == (100 * contributions, contributions)


def test_a_taxpayer_whose_snapshot_is_of_the_earlier_kind_is_folded_from_every_event_and_given_one_of_this_kind(
        platform, client):
    # As the tax service found its snapshots after the upgrade that made them "Taxpayer.v2":
    # "Taxpayer.v1" rows, with the vouchers and withholdings as objects.
    participant = register(client)
    open_fund_account(client, participant)
    for _ in range(SNAPSHOT_EVERY + 5):
        contribute(client, participant, "1.00")
    wait_for_vouchers(client, participant.participant_id, SNAPSHOT_EVERY + 5)
    ctx, stream_id = platform.context("tax"), taxpayer_stream(participant.participant_id)
    with ctx.engine.begin() as conn:
        stream, taxpayer = load_taxpayer(conn, ctx.store, participant.participant_id)
        assert stream.snapshot is not None and stream.snapshot.kind == Taxpayer.SNAPSHOT == "Taxpayer.v2"
        v1 = {**taxpayer.snapshot_state(),
              "vouchers": {key: asdict(voucher) for key, voucher in taxpayer.vouchers.items()},
              "withholdings": {key: asdict(held) for key, held in taxpayer.withholdings.items()}}
        conn.execute(snapshots.update().where(snapshots.c.stream_id == stream_id).values(
            kind="Taxpayer.v1", state=canonical_json(v1).decode()))
    with ctx.engine.connect() as conn:
        stream, restored = load_taxpayer(conn, ctx.store, participant.participant_id)
        every = ctx.store.load(conn, stream_id)
    assert stream.snapshot is None and len(stream.events) == every.version
    assert restored == taxpayer

    contribute(client, participant, "1.00")
    wait_for_vouchers(client, participant.participant_id, SNAPSHOT_EVERY + 6)
    with ctx.engine.connect() as conn:
        stream, after = load_taxpayer(conn, ctx.store, participant.participant_id)
        every = ctx.store.load(conn, stream_id)
    assert stream.snapshot is not None and (stream.snapshot.kind, stream.snapshot.version) == ("Taxpayer.v2", every.version)
    assert after == Taxpayer.from_events(participant.participant_id, [(e.event_type.name, e.data) for e in every.events])
    assert len(after.vouchers) == SNAPSHOT_EVERY + 6


def test_the_withholding_return_lists_each_payout_for_its_bank_and_month(platform, client, taxpayer):
    publisher = platform.transport.publisher("test")
    first_id, first = payout_made(taxpayer, gross=1_234_567, tax=37_037, paid_at="2025-10-15T10:00:00+08:00")
    second_id, second = payout_made(taxpayer, gross=120_000, tax=3_500, paid_at="2025-10-20T10:00:00+08:00")
    publisher.publish([first, second])

    def return_for_october() -> list[dict] | None:
        items = client.get("/v1/tax/withholdings?bank_code=ICBC&month=2025-10", headers=TAX_BUREAU).json()["items"]
        mine = [i for i in items if i["participant_id"] == taxpayer.participant_id]
        return mine if len(mine) == 2 else None

    items = eventually(return_for_october)
    assert [(i["payout_id"], i["gross"], i["tax"], i["net"], i["discrepancy"]) for i in items] == [
        (first_id, "12345.67", "370.37", "11975.30", False), (second_id, "1200.00", "35.00", "1165.00", True),
    ]
    assert items[0]["id_number"] == taxpayer.id_number and items[0]["withholding_city"] == "410100"
    assert client.get("/v1/tax/withholdings?bank_code=ICBC", headers=BOC).status_code == 403
    own = client.get("/v1/tax/withholdings?month=2025-10", headers=ICBC).json()["items"]
    assert {i["payout_id"] for i in own} >= {first_id, second_id}
    assert client.get("/v1/tax/withholdings?month=2025-13", headers=TAX_BUREAU).status_code == 422

    publisher.publish([payout_reversed(taxpayer, second_id, gross=120_000, tax=3_500,
                                       reversed_at="2025-10-21T10:00:00+08:00")])
    eventually(lambda: [i for i in client.get("/v1/tax/withholdings?bank_code=ICBC&month=2025-10",
                                              headers=TAX_BUREAU).json()["items"]
                        if i["payout_id"] == second_id and i["status"] == "reversed"])

    tax = platform.context("tax")
    for batch_size in (1, 2000):  # the reversal applied to a stored row, or folded into its row in the batch
        with tax.engine.begin() as conn:
            before = _read_models(conn)
            tax.store.rebuild_projections(conn, batch_size=batch_size)
            assert _read_models(conn) == before
    with tax.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(withholdings.c.payout_id, withholdings.c.status)
                                     .where(withholdings.c.payout_id.in_([first_id, second_id]))).all())
    assert statuses == {first_id: "withheld", second_id: "reversed"}


def _read_models(conn) -> dict[str, list[tuple]]:
    return {table.name: sorted(tuple(row) for row in conn.execute(sa.select(table))) for table in read_models.sorted_tables}


def test_the_statement_is_readable_any_time_and_issued_once_when_the_year_is_over(platform, client, taxpayer):
    path = f"/v1/tax/statements/{taxpayer.participant_id}/2025"
    provisional = client.get(path, headers=ICBC).json()
    assert provisional["status"] == "provisional"
    assert (provisional["contributed"], provisional["deductible"], provisional["deduction_limit"]) == (
        "12000.00", "12000.00", "12000.00")
    assert client.get(path, headers=BOC).status_code == 404

    client.put("/v1/ops/clock", json={"now": "2026-01-01T00:00:01+08:00"}, headers=OPERATOR)
    issued = eventually(lambda: (s := client.get(path, headers=TAX_BUREAU).json())["status"] == "issued" and s)
    assert (issued["withdrawn_gross"], issued["tax_withheld"]) == ("12345.67", "370.37")

    jobs = platform.context("tax").definition.jobs(platform.context("tax"))
    assert sum(job.run_once() for job in jobs) == 0, "a statement already issued is not issued again"
    ctx = platform.context("tax")
    with ctx.engine.connect() as conn:
        statements = Counter(e.subject for e in ctx.store.read_all(conn)
                             if e.event_type.name == "AnnualTaxStatementIssued")
    assert statements[taxpayer.participant_id] == 1
