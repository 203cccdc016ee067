"""The payout service hears of a participant on two topics (pension.account, pension.fund-account),
which Kafka does not order with each other: either may arrive first."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pension_payout.application.policies import load_payee, load_withdrawal
from pension_payout.bootstrap import DEFINITION
from pension_shared.envelope import Envelope, chain_hash, event_type
from pension_shared.messaging import OutgoingRecord
from pension_shared.runtime import EmbeddedTransport, build_context
from pension_shared.settings import ServiceSettings

TIME = "2025-10-01T09:00:00+08:00"


def _event(service: str, name: str, subject: str, data: dict) -> Envelope:
    attributes = dict(
        id=str(uuid.uuid4()), source=f"/pension/{service}", type=event_type(service, name, 1), time=TIME,
        subject=subject, streamid=f"{service}-{subject}", sequence=1, data=data, prevhash=None,
        correlationid=None, causationid=None,
    )
    return Envelope(**attributes, hash=chain_hash(**attributes))


def test_a_fund_account_opened_before_the_registration_arrives_is_noted_not_dead_lettered(tmp_path: Path) -> None:
    ctx, transport = _service(tmp_path)
    participant = f"P{uuid.uuid4().hex[:20].upper()}"
    opened = _event("fund-account", "FundAccountOpened", participant, {
        "fund_account_id": "FA1", "participant_id": participant, "bank_code": "ICBC", "branch_city": "410100",
    })
    registered = _event("account", "ParticipantRegistered", participant, {
        "participant_id": participant, "payee_sealed": "sealed",
        "ss_card_account": {"bank_code": "BOC", "account_number_masked": "6217********1234"},
    })
    publisher = transport.publisher("test")
    consumer = ctx.consumer()
    try:
        publisher.publish([OutgoingRecord("pension.fund-account", participant, opened.to_json())])
        first = _drain(consumer)
        publisher.publish([OutgoingRecord("pension.account", participant, registered.to_json())])
        second = _drain(consumer)
    finally:
        consumer.close()
    assert (first.processed, first.dead_lettered, second.processed, second.dead_lettered) == (1, 0, 1, 0)
    with ctx.engine.connect() as conn:
        _, payee = load_payee(ctx.store, conn, participant)
    assert payee.registered and payee.bank_code == "BOC"
    assert (payee.fund_account_id, payee.fund_bank_code, payee.withholding_city) == ("FA1", "ICBC", "410100")


@pytest.mark.parametrize("death_first", [True, False])
def test_a_death_starts_one_inheritance_whichever_topic_brings_the_fund_account_first(tmp_path: Path, death_first: bool) -> None:
    """A death registered right after the fund account's opening may reach the payout service
    before it: the inheritance then starts when the fund account is noted, not never."""
    ctx, transport = _service(tmp_path)
    participant = f"P{uuid.uuid4().hex[:20].upper()}"
    registered = _event("account", "ParticipantRegistered", participant, {
        "participant_id": participant, "payee_sealed": "sealed",
        "ss_card_account": {"bank_code": "BOC", "account_number_masked": "6217********1234"},
    })
    heirs = [{"heir_no": 1, "share": "1", "payee_bank_code": "CCB", "payee_account_masked": "6227********5678"}]
    died = _event("account", "ParticipantDied", participant, {
        "participant_id": participant, "date_of_death": "2025-09-28", "heirs": heirs, "heirs_sealed": "sealed-heirs",
        "registered_at": TIME,
    })
    opened = [_event("fund-account", "FundAccountOpened", participant, {
        "fund_account_id": fund_account_id, "participant_id": participant, "bank_code": "ICBC", "branch_city": "410100",
    }) for fund_account_id in ("FA1", "FA2")]
    account = [OutgoingRecord("pension.account", participant, e.to_json()) for e in (registered, died)]
    fund_account = [OutgoingRecord("pension.fund-account", participant, opened[0].to_json())]
    publisher, consumer = transport.publisher("test"), ctx.consumer()
    try:
        for records in ((account, fund_account) if death_first else (fund_account, account)):
            publisher.publish(records)
            assert _drain(consumer).dead_lettered == 0
        publisher.publish([OutgoingRecord("pension.fund-account", participant, opened[1].to_json())])  # e.g. a bank change's
        _drain(consumer)
    finally:
        consumer.close()
    with ctx.engine.connect() as conn:
        _, payee = load_payee(ctx.store, conn, participant)
        started = [load_withdrawal(ctx.store, conn, w)[1] for w in payee.withdrawal_ids]
    assert payee.deceased and payee.inheritance_started
    assert [(w.kind, w.fund_account_id, w.heirs) for w in started] == [("inheritance", "FA1", heirs)]


def _service(tmp_path: Path):  # noqa: ANN202
    log_path = tmp_path / "log.db"
    transport = EmbeddedTransport(log_path, partitions=1)
    ctx = build_context(DEFINITION, ServiceSettings(
        env="test", database_url=f"sqlite:///{tmp_path / 'payout.db'}", transport="embedded", embedded_log_path=log_path,
    ), transport=transport)
    ctx.migrate()
    transport.prepare(["pension.account", "pension.fund-account", "pension.account.dlq", "pension.fund-account.dlq"])
    return ctx, transport


def _drain(consumer):  # noqa: ANN001, ANN202
    from pension_shared.consumer import Outcome

    total = Outcome()
    for _ in range(20):
        outcome = consumer.consume_once(timeout_s=0.2)
        total = Outcome(*(a + b for a, b in zip(total.__dict__.values(), outcome.__dict__.values())))
        if total.processed + total.dead_lettered and not (outcome.processed + outcome.dead_lettered):
            break
    return total
