"""The fund-account service's read models rebuilt set-based on PostgreSQL are, row for row, those
its projections keep live and those the Python rebuild gives, over random histories through its
HTTP API: contributions, purchases and redemptions of a few products (holdings sold out and
bought again, purchases refused for want of cash), income, across accounts at several banks."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fund_account_support.platform import bank, start_service
from pension_fund_account.application.seeding import seed_default_products
from pension_shared.testing import empty_service, postgres_databases, rebuilt_both_ways

pytestmark = pytest.mark.postgres

BANKS = ("ICBC", "BOC")
PRODUCTS = ("WM0001", "TB0001")


@pytest.fixture(scope="module")
def service(postgres_server_url, tmp_path_factory):
    with postgres_databases(postgres_server_url) as new_database:
        running = start_service(new_database(), tmp_path_factory.mktemp("fund-account"),
                                datetime.fromisoformat("2025-08-15T09:00:00+08:00"), seed=False)
        try:
            yield running
        finally:
            running.ctx.engine.dispose()


account = st.integers(0, len(BANKS) - 1)
product = st.sampled_from(PRODUCTS)
operation = st.one_of(
    st.tuples(st.just("contributions"), account, st.integers(1, 300_000)),
    st.tuples(st.just("purchases"), account, product, st.integers(1, 200_000)),
    st.tuples(st.just("redemptions"), account, product, st.sampled_from([1, 2, 4])),
    st.tuples(st.just("income"), account, st.integers(1, 5_000)),
)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _act(service, accounts: list[str], step: tuple) -> None:  # noqa: ANN001
    what, fund_account_id = step[0], accounts[step[1]]
    path, headers = f"/v1/fund-accounts/{fund_account_id}", bank(BANKS[step[1]])
    if what == "contributions":
        body = {"amount": _yuan(step[2]), "channel": "bank_transfer", "reference": "r"}
    elif what == "purchases":
        body = {"product_code": step[2], "amount": _yuan(step[3])}
    elif what == "income":
        body = {"amount": _yuan(step[2]), "kind": "interest"}
    else:
        held = next((h["units"] for h in service.client.get(path, headers=headers).json()["holdings"]
                     if h["product_code"] == step[2]), None)
        if held is None:
            return
        whole, _, micro = held.partition(".")
        units = (int(whole) * 1_000_000 + int(micro.ljust(6, "0"))) // step[3]
        body = {"product_code": step[2], "units": f"{units // 1_000_000}.{units % 1_000_000:06d}", "proceeds": "1.00"}
    response = service.client.post(f"{path}/{what}", headers=headers, json=body)
    assert response.status_code in (201, 409, 422), response.text  # refused (cash, quota): changes nothing


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operation, min_size=1, max_size=30))
def test_the_set_based_rebuild_gives_the_rows_the_projections_keep(service, steps) -> None:  # noqa: ANN001
    ctx = service.ctx
    empty_service(ctx.engine, ctx.store, "idempotency_keys")
    seed_default_products(ctx)
    accounts = [service.open_account(service.recognise(), bank_code) for bank_code in BANKS]
    for step in steps:
        _act(service, accounts, step)
    with ctx.engine.begin() as conn:
        live, set_based, python = rebuilt_both_ways(conn, ctx.store)
    assert set_based == live
    assert python == live
