"""How the fund-account service reacts to other services' events (one policy per consumed event)."""

from __future__ import annotations

from typing import Callable

from sqlalchemy.engine import Connection

from pension_fund_account.application.handlers import abort_bank_change, complete_bank_change
from pension_fund_account.application.payouts import (
    close_after_withdrawal, debit_instalment, record_death, record_receiving, refund_instalment,
)
from pension_fund_account.domain.events import PARTICIPANT_RECOGNISED, participant_stream
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent

PARTICIPANT_REGISTERED = "cn.pension.account.ParticipantRegistered.v1"
BANK_CHANGE_CONFIRMED = "cn.pension.account.BankChangeConfirmed.v1"
BANK_CHANGE_REJECTED = "cn.pension.account.BankChangeRejected.v1"
PARTICIPANT_RECEIVING = "cn.pension.account.ParticipantReceiving.v1"
PARTICIPANT_DIED = "cn.pension.account.ParticipantDied.v1"
PAYOUT_INSTRUCTED = "cn.pension.payout.PayoutInstructed.v1"
PAYOUT_REFUND_REQUESTED = "cn.pension.payout.PayoutRefundRequested.v1"
WITHDRAWAL_COMPLETED = "cn.pension.payout.WithdrawalCompleted.v1"

Policy = Callable[[Connection, Envelope], None]


def on_participant_registered(store: EventStore) -> Policy:
    def policy(conn: Connection, source: Envelope) -> None:
        data = source.data
        stream = store.load(conn, participant_stream(data["participant_id"]))
        if stream.version:
            return
        recorded = {
            "participant_id": data["participant_id"],
            "insurance_type": data["insurance_type"],
            "insured_region": data["insured_region"],
            "registered_at": data["registered_at"],
        }
        meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
        store.append(conn, stream.stream_id, 0, [NewEvent(PARTICIPANT_RECOGNISED, recorded, subject=source.subject)], meta)

    return policy


def _caused_by(source: Envelope) -> Metadata:
    return Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)


def on_bank_change_confirmed(store: EventStore) -> Policy:
    """A-CHG-2: the platform confirmed; the new bank receives the account and the year's quota."""

    def policy(conn: Connection, source: Envelope) -> None:
        data = source.data
        complete_bank_change(
            conn, store, data["participant_id"], data["bank_change_id"], data["remaining_quota"], _caused_by(source),
        )

    return policy


def on_bank_change_rejected(store: EventStore) -> Policy:
    def policy(conn: Connection, source: Envelope) -> None:
        data = source.data
        abort_bank_change(conn, store, data["participant_id"], data["bank_change_id"], data["reason"], _caused_by(source))

    return policy


def _payout_policy(store: EventStore, handler) -> Policy:  # noqa: ANN001
    def policy(conn: Connection, source: Envelope) -> None:
        handler(conn, store, source.data, _caused_by(source))

    return policy


def policies(store: EventStore) -> dict[str, Policy]:
    return {
        PARTICIPANT_REGISTERED: on_participant_registered(store),
        BANK_CHANGE_CONFIRMED: on_bank_change_confirmed(store),
        BANK_CHANGE_REJECTED: on_bank_change_rejected(store),
        PARTICIPANT_RECEIVING: _payout_policy(store, record_receiving),
        PARTICIPANT_DIED: _payout_policy(store, record_death),
        PAYOUT_INSTRUCTED: _payout_policy(store, debit_instalment),
        PAYOUT_REFUND_REQUESTED: _payout_policy(store, refund_instalment),
        WITHDRAWAL_COMPLETED: _payout_policy(store, close_after_withdrawal),
    }
