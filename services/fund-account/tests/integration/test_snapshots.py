"""A long-lived account through the HTTP API: snapshots are kept as its history grows, a command
then reads fewer than SNAPSHOT_EVERY events of each stream, and what it decides is what the whole
history decides."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from fund_account_support.platform import bank, start_service
from pension_fund_account.application.handlers import load_account, load_funds
from pension_fund_account.domain.events import fund_account_stream, participant_stream
from pension_fund_account.domain.fund_account import FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_fund_account.adapters.streams import named_events
from pension_shared.ledger import SNAPSHOT_EVERY
from pension_shared.schema import snapshots
from pension_shared.verification import verify_ledger

pytestmark = pytest.mark.postgres

AUGUST = datetime.fromisoformat("2025-08-15T09:00:00+08:00")


@pytest.fixture
def service(database_url, tmp_path):
    running = start_service(database_url, tmp_path, AUGUST)
    yield running
    running.ctx.engine.dispose()


def test_a_long_history_is_read_from_its_snapshots_and_decides_as_every_event_does(service):
    participant_id = service.recognise()
    fund_account_id = service.open_account(participant_id)
    accepted, purchases = 0, 0
    for n in range(2 * SNAPSHOT_EVERY + 30):
        response = service.contribute(fund_account_id, "1.00")
        assert response.status_code == 201, response.text
        accepted += 100
        if n % 40 == 0:  # some of the cash buys a product
            bought = service.client.post(f"/v1/fund-accounts/{fund_account_id}/purchases", headers=bank("ICBC"),
                                         json={"product_code": "PF0001", "amount": "0.50"})
            assert bought.status_code == 201, bought.text
            purchases += 1

    with service.ctx.engine.connect() as conn:
        kept = dict(conn.execute(sa.select(snapshots.c.stream_id, snapshots.c.version)).all())
        account_stream, account = load_account(conn, service.ctx.store, fund_account_id)
        funds_stream, funds = load_funds(conn, service.ctx.store, participant_id)
        every_account_event = service.ctx.store.load(conn, fund_account_stream(fund_account_id))
        every_funds_event = service.ctx.store.load(conn, participant_stream(participant_id))
        assert verify_ledger(conn).intact

    # The account's stream holds the opening, the contributions and some purchases; the
    # participant's the recognition, the assignment and a registration per contribution: both
    # have snapshots past twice SNAPSHOT_EVERY.
    assert kept[fund_account_stream(fund_account_id)] >= 2 * SNAPSHOT_EVERY
    assert kept[participant_stream(participant_id)] >= 2 * SNAPSHOT_EVERY
    assert account_stream.snapshot is not None and len(account_stream.events) < SNAPSHOT_EVERY
    assert funds_stream.snapshot is not None and len(funds_stream.events) < SNAPSHOT_EVERY
    assert account_stream.version == every_account_event.version == len(every_account_event.events)
    assert account == FundAccount.from_events(fund_account_id, named_events(every_account_event))
    assert funds == ParticipantFunds.from_events(participant_id, named_events(every_funds_event))

    shown = service.account(fund_account_id)
    assert shown["contributed_this_year"] == f"{accepted // 100}.00"
    cash = accepted - purchases * 50
    assert shown["cash_balance"] == f"{cash // 100}.{cash % 100:02d}"
    refused = service.contribute(fund_account_id, f"{12_000 - accepted // 100 + 1}.00")
    assert (refused.status_code, refused.json()["remaining_quota"]) == (422, f"{12_000 - accepted // 100}.00")

