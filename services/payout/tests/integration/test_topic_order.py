"""The payout service hears of a participant on two topics (pension.account, pension.fund-account),
which Kafka does not order with each other: either may arrive first."""

from __future__ import annotations

import uuid
from pathlib import Path

from pension_payout.application.policies import load_payee
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
    log_path = tmp_path / "log.db"
    transport = EmbeddedTransport(log_path, partitions=1)
    ctx = build_context(DEFINITION, ServiceSettings(
        env="test", database_url=f"sqlite:///{tmp_path / 'payout.db'}", transport="embedded", embedded_log_path=log_path,
    ), transport=transport)
    ctx.migrate()
    transport.prepare(["pension.account", "pension.fund-account", "pension.account.dlq", "pension.fund-account.dlq"])
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


def _drain(consumer):  # noqa: ANN001, ANN202
    from pension_shared.consumer import Outcome

    total = Outcome()
    for _ in range(20):
        outcome = consumer.consume_once(timeout_s=0.2)
        total = Outcome(*(a + b for a, b in zip(total.__dict__.values(), outcome.__dict__.values())))
        if total.processed + total.dead_lettered and not (outcome.processed + outcome.dead_lettered):
            break
    return total
