"""The tax service's read models rebuilt set-based on PostgreSQL are, row for row, those its
projections keep live and those the Python rebuild gives, over random histories decided by the
service's own policies: taxpayers registered before or after what is reported for them, fund
accounts noted again, contributions over several years and beyond the deductible limit, some
reversed (vouchers voided, possibly before later contributions), payouts withheld and reversed,
statements issued for closed years."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pension_shared.envelope import Envelope
from pension_shared.pii import PersonalDataKey
from pension_shared.runtime import build_context
from pension_shared.settings import ServiceSettings
from pension_shared.testing import empty_service, postgres_databases, rebuilt_both_ways
from pension_tax.application import policies as consumed
from pension_tax.application.statements import TaxYearClosing
from pension_tax.bootstrap import DEFINITION, tax_rules
from pension_tax.domain.taxpayer import UnknownContribution, UnknownPayout

pytestmark = pytest.mark.postgres

PARTICIPANTS = [f"P{n:020d}" for n in range(2)]


@pytest.fixture(scope="module")
def tax(postgres_server_url, tmp_path_factory):
    with postgres_databases(postgres_server_url) as new_database:
        log = Path(tmp_path_factory.mktemp("tax")) / "log.db"
        ctx = build_context(DEFINITION, ServiceSettings(env="test", database_url=new_database(), transport="embedded",
                                                        embedded_log_path=log, consumer_group_prefix="g"))
        ctx.migrate()
        try:
            yield ctx
        finally:
            ctx.engine.dispose()


@dataclass
class History:
    """What was reported so far, to pick what a reversal reverses."""

    contributions: dict[str, list[str]] = field(default_factory=dict)
    payouts: dict[str, list[str]] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    day: int = 0

    def at(self) -> str:
        self.day += 1
        return f"2025-{1 + self.day // 28 % 12:02d}-{1 + self.day % 28:02d}T10:00:00+08:00"


KINDS = ["register", "open", *["contribute"] * 4, *["reverse"] * 3, "pay", "pay", "unpay", "unpay", "close", "close"]
operation = st.tuples(st.sampled_from(KINDS), st.sampled_from(PARTICIPANTS), st.sampled_from([2024, 2025]),
                      st.integers(1, 700_000), st.sampled_from(["ICBC", "BOC", "CCB"]))
"""(what, participant, year, an amount in fen or which earlier report a reversal takes, a bank)."""


def _report(ctx, history: History, step: tuple) -> None:  # noqa: ANN001
    kind, participant_id, year, amount, bank_code = step
    at = history.at()
    fund_account_id = history.accounts.get(participant_id, "FA-NOT-NOTED")
    if kind == "close":
        TaxYearClosing(ctx.engine, ctx.store, ctx.clock, tax_rules(ctx)).close(participant_id, year, at=at)
        return
    if kind == "register":
        identity = PersonalDataKey(ctx.settings.pii_key).seal({"id_number": "11010519491231002X", "name": "张三"})
        type_, data = consumed.PARTICIPANT_REGISTERED, {"identity_sealed": identity, "registered_at": at}
    elif kind == "open":
        history.accounts[participant_id] = fund_account_id = f"FA{uuid.uuid4().hex[:20].upper()}"
        type_, data = consumed.FUND_ACCOUNT_OPENED, {"fund_account_id": fund_account_id, "bank_code": bank_code,
                                                      "branch_city": "410100", "opened_at": at}
    elif kind == "contribute":
        contribution_id = f"C{uuid.uuid4().hex[:20].upper()}"
        history.contributions.setdefault(participant_id, []).append(contribution_id)
        type_, data = consumed.CONTRIBUTION_RECEIVED, {"contribution_id": contribution_id, "year": year,
                                                        "amount": amount, "fund_account_id": fund_account_id}
    elif kind == "pay":
        payout_id = f"W{uuid.uuid4().hex[:12].upper()}-1"
        history.payouts.setdefault(participant_id, []).append(payout_id)
        tax = amount * 3 // 100 + amount % 2  # now and then not what the tax bureau expects
        type_, data = consumed.PAYOUT_MADE, {
            "withdrawal_id": payout_id[:-2], "payout_id": payout_id, "fund_account_id": fund_account_id,
            "bank_code": bank_code, "withholding_city": "410100", "gross": amount, "tax": tax, "net": amount - tax,
            "paid_at": f"{year}-06-15T10:00:00+08:00", "kind": "withdrawal"}
    else:
        made = (history.contributions if kind == "reverse" else history.payouts).get(participant_id, [])
        if not made:
            return
        reversed_id = made[amount % len(made)]
        type_, data = ((consumed.CONTRIBUTION_REVERSED, {"contribution_id": reversed_id, "reason": "returned"})
                       if kind == "reverse" else
                       (consumed.PAYOUT_REVERSED, {"withdrawal_id": reversed_id[:-2], "payout_id": reversed_id,
                                                   "reason": "account closed", "reversed_at": at}))
    source = Envelope(id=str(uuid.uuid4()), source="/pension/test", type=type_, time=at, subject=participant_id,
                      streamid=f"test-{participant_id}", sequence=1, data={"participant_id": participant_id, **data},
                      prevhash=None, hash="")
    try:
        with ctx.engine.begin() as conn:
            ctx.definition.policies(ctx)[type_](conn, source)
    except (UnknownContribution, UnknownPayout):
        pass  # a reversal of what the taxpayer has not been told of yet: refused, changes nothing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operation, min_size=10, max_size=60))
def test_the_set_based_rebuild_gives_the_rows_the_projections_keep(tax, steps) -> None:  # noqa: ANN001
    empty_service(tax.engine, tax.store)
    history = History()
    for step in steps:
        _report(tax, history, step)
    with tax.engine.begin() as conn:
        live, set_based, python = rebuilt_both_ways(conn, tax.store)
    assert set_based == live
    assert python == live
