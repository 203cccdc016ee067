"""The tax API's reads of vouchers and withholdings on both databases: a page of vouchers is read
in one statement that also decides whether the principal may read the taxpayer, on PostgreSQL
outside any transaction of its own; an empty page is then told apart, unknown taxpayer from none
issued."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pension_shared.migrations import upgrade
from pension_shared.runtime import EmbeddedTransport, build_app, build_context
from pension_shared.settings import ServiceSettings
from pension_tax.adapters.tables import holding_banks, taxpayers, vouchers, withholdings
from pension_tax.bootstrap import DEFINITION
from tests.support.requests import auth

OPERATOR, TAX_BUREAU, ICBC, BOC = (auth(t) for t in ("dev-operator", "dev-tax-bureau", "dev-bank-ICBC", "dev-bank-BOC"))
ID_NUMBER = "11010519491231002X"


def _ids(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16].upper()}"


@pytest.fixture
def tax(database_url: str, tmp_path: Path):  # noqa: ANN201
    upgrade(DEFINITION.migrations, database_url)
    log = tmp_path / "log.db"
    ctx = build_context(DEFINITION, ServiceSettings(database_url=database_url, transport="embedded", embedded_log_path=log),
                        transport=EmbeddedTransport(log))
    statements: list[tuple[str, bool]] = []
    postgres = ctx.engine.dialect.name == "postgresql"

    @sa.event.listens_for(ctx.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        # What reaches the server, and (on PostgreSQL) whether psycopg sends it outside a
        # transaction: SQLite's own BEGIN IMMEDIATE is not a statement of the read's.
        if postgres:
            statements.append((statement, conn.connection.driver_connection.autocommit))
        elif statement != "BEGIN IMMEDIATE":
            statements.append((statement, True))

    with TestClient(build_app([ctx], title="tax")) as client:
        yield client, ctx.engine, statements
    ctx.engine.dispose()


def _taxpayer(engine: sa.Engine, *, bank: str, vouchers_issued: int) -> str:
    participant = _ids("P")
    with engine.begin() as conn:
        conn.execute(taxpayers.insert(), {"participant_id": participant, "id_number": ID_NUMBER, "name": "张三",
                                          "registered_at": "2025-01-02T09:00:00+08:00"})
        conn.execute(holding_banks.insert(), {"participant_id": participant, "fund_account_id": _ids("F"),
                                              "bank_code": bank, "branch_city": "410100"})
        position = conn.execute(sa.select(sa.func.coalesce(sa.func.max(vouchers.c.position), 0))).scalar_one()
        for n in range(1, vouchers_issued + 1):
            conn.execute(vouchers.insert(), {
                "voucher_no": _ids("V2025"), "position": position + n, "participant_id": participant, "id_number": ID_NUMBER,
                "name": "张三", "year": 2025, "amount": 100_00, "cumulative_amount": n * 100_00, "deductible_amount": 100_00,
                "issued_at": "2025-03-10T10:00:00+08:00", "contribution_id": _ids("C"), "fund_account_id": "F1",
                "verification_code": "ABCDEF0123456789", "status": "issued"})
    return participant


def _read(client: TestClient, participant: str, headers: dict, **query: object):  # noqa: ANN202
    params = "".join(f"&{name}={value}" for name, value in query.items())
    return client.get(f"/v1/tax/vouchers?participant_id={participant}{params}", headers=headers)


def test_a_page_of_vouchers_is_one_statement_outside_a_transaction(tax) -> None:  # noqa: ANN001
    client, engine, statements = tax
    participant = _taxpayer(engine, bank="ICBC", vouchers_issued=3)
    for headers in (OPERATOR, TAX_BUREAU, ICBC):
        statements.clear()
        response = _read(client, participant, headers, year=2025)
        assert response.status_code == 200
        assert [v["cumulative_amount"] for v in response.json()["items"]] == ["100.00", "200.00", "300.00"]
        assert len(statements) == 1 and statements[0][1], statements

    first = _read(client, participant, ICBC, limit=2).json()
    assert len(first["items"]) == 2 and first["next"]
    rest = _read(client, participant, ICBC, limit=2, after=first["next"]).json()
    assert [v["cumulative_amount"] for v in rest["items"]] == ["300.00"] and rest["next"] is None


def test_another_bank_an_unknown_taxpayer_and_one_without_vouchers_are_told_apart(tax) -> None:  # noqa: ANN001
    client, engine, statements = tax
    with_vouchers = _taxpayer(engine, bank="ICBC", vouchers_issued=2)
    without = _taxpayer(engine, bank="ICBC", vouchers_issued=0)
    for participant, headers in ((with_vouchers, BOC), (without, BOC), (_ids("P"), OPERATOR), (_ids("P"), ICBC)):
        response = _read(client, participant, headers)
        assert response.status_code == 404 and response.json()["code"] == "PARTICIPANT_NOT_FOUND", (participant, headers)
        assert "items" not in response.json()
    for headers in (OPERATOR, TAX_BUREAU, ICBC):
        statements.clear()
        response = _read(client, without, headers)
        assert response.status_code == 200 and response.json() == {"items": [], "next": None}
        assert len(statements) == 2 and all(autocommit for _, autocommit in statements), statements
    assert _read(client, with_vouchers, ICBC, year=2026).json() == {"items": [], "next": None}


def test_a_voucher_checks_and_the_withholding_return_reads_outside_a_transaction(tax) -> None:  # noqa: ANN001
    client, engine, statements = tax
    participant = _taxpayer(engine, bank="ICBC", vouchers_issued=1)
    voucher = _read(client, participant, ICBC).json()["items"][0]
    statements.clear()
    checked = client.get(f"/v1/tax/vouchers/{voucher['voucher_no']}?code={voucher['verification_code']}")
    assert checked.status_code == 200 and checked.json()["contribution_id"] == voucher["contribution_id"]
    assert client.get(f"/v1/tax/vouchers/{voucher['voucher_no']}?code=0000000000000000").status_code == 404
    assert len(statements) == 2 and all(autocommit for _, autocommit in statements), statements

    payout = _ids("Y")
    with engine.begin() as conn:
        conn.execute(withholdings.insert(), {
            "payout_id": payout, "position": 10**9 + 1, "participant_id": participant, "id_number": ID_NUMBER, "name": "张三",
            "withdrawal_id": _ids("W"), "kind": "monthly", "gross": 1000_00, "tax": 30_00, "net": 970_00,
            "expected_tax": 30_00, "discrepancy": False, "withholding_city": "410100", "bank_code": "ICBC",
            "paid_at": "2025-04-01T10:00:00+08:00", "year": 2025, "month": "2025-04", "status": "withheld"})
    statements.clear()
    returned = client.get("/v1/tax/withholdings?month=2025-04", headers=ICBC).json()["items"]
    assert [(w["payout_id"], w["tax"]) for w in returned] == [(payout, "30.00")]
    assert client.get("/v1/tax/withholdings?month=2025-04", headers=BOC).json()["items"] == []
    assert len(statements) == 2 and all(autocommit for _, autocommit in statements), statements
