"""How the tax service reacts to other services' events (one policy per consumed event).

Each policy turns the reported fact into the tax service's terms, lets the taxpayer decide, and
records the decision on the taxpayer's stream in the consumer's transaction (so the inbox row and
the effect commit together). Redelivered events decide nothing new."""

from __future__ import annotations

from typing import Callable

from sqlalchemy.engine import Connection

from pension_shared.consumer import reads_only_streams
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent, Stream
from pension_shared.pii import PersonalDataKey
from pension_tax.domain.events import Event, taxpayer_stream
from pension_tax.domain.taxpayer import (
    Contribution, ContributionReversal, Payout, PayoutReversal, TaxRules, Taxpayer,
)

Policy = Callable[[Connection, Envelope], None]

PARTICIPANT_REGISTERED = "cn.pension.account.ParticipantRegistered.v1"
FUND_ACCOUNT_OPENED = "cn.pension.fund-account.FundAccountOpened.v1"
CONTRIBUTION_RECEIVED = "cn.pension.fund-account.ContributionReceived.v1"
CONTRIBUTION_REVERSED = "cn.pension.fund-account.ContributionReversed.v1"
PAYOUT_MADE = "cn.pension.payout.PayoutMade.v1"
PAYOUT_REVERSED = "cn.pension.payout.PayoutReversed.v1"

CONSUMED = (
    PARTICIPANT_REGISTERED, FUND_ACCOUNT_OPENED, CONTRIBUTION_RECEIVED, CONTRIBUTION_REVERSED, PAYOUT_MADE, PAYOUT_REVERSED,
)
SUBSCRIBES_TO = ("pension.account", "pension.fund-account", "pension.payout")


def load_taxpayer(conn: Connection, store: EventStore, participant_id: str) -> tuple[Stream, Taxpayer]:
    """The taxpayer from their last snapshot and the events after it."""
    stream = store.load(conn, taxpayer_stream(participant_id), snapshot=Taxpayer.SNAPSHOT)
    taxpayer = Taxpayer.from_events(participant_id, ((e.event_type.name, e.data) for e in stream.events),
                                    stream.snapshot_state)
    return stream, taxpayer


def record(conn: Connection, store: EventStore, stream: Stream, taxpayer: Taxpayer, decided: list[Event],
           meta: Metadata) -> int:
    """Append what ``taxpayer`` decided after the stream it was loaded from (in this transaction),
    and keep a snapshot when one is due: the taxpayer has folded in each event it decided."""
    participant_id = taxpayer.participant_id
    recorded = store.append_to(conn, stream, [NewEvent(e.name, e.data, subject=participant_id) for e in decided], meta)
    store.snapshot_after(conn, stream, recorded, Taxpayer.SNAPSHOT, taxpayer.snapshot_state)
    return len(decided)


def _taxpayer_of(source: Envelope) -> dict[str, str | None]:
    """The stream a policy loads for ``source``, read ahead for a whole batch by the consumer."""
    return {taxpayer_stream(source.data["participant_id"]): Taxpayer.SNAPSHOT}


def _decide(store: EventStore, decide: Callable[[Taxpayer, Envelope], list[Event]]) -> Policy:
    @reads_only_streams(streams=_taxpayer_of)
    def policy(conn: Connection, source: Envelope) -> None:
        participant_id = source.data["participant_id"]
        stream, taxpayer = load_taxpayer(conn, store, participant_id)
        meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
        record(conn, store, stream, taxpayer, decide(taxpayer, source), meta)

    return policy


def policies(store: EventStore, pii: PersonalDataKey, rules: TaxRules) -> dict[str, Policy]:
    def participant_registered(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        identity = pii.unseal(source.data["identity_sealed"])
        return taxpayer.register(id_number=identity["id_number"], name=identity["name"],
                                 registered_at=source.data["registered_at"], rules=rules, at=source.time)

    def fund_account_opened(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        data = source.data
        return taxpayer.note_fund_account(fund_account_id=data["fund_account_id"], bank_code=data["bank_code"],
                                          branch_city=data["branch_city"], opened_at=data["opened_at"])

    def contribution_received(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        data = source.data
        return taxpayer.take(Contribution(data["contribution_id"], data["fund_account_id"], data["year"], data["amount"]),
                             rules, at=source.time)

    def contribution_reversed(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        data = source.data
        return taxpayer.take(ContributionReversal(data["contribution_id"], data["reason"]), rules, at=source.time)

    def payout_made(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        data = source.data
        return taxpayer.take(Payout(
            withdrawal_id=data["withdrawal_id"], payout_id=data["payout_id"], fund_account_id=data["fund_account_id"],
            bank_code=data["bank_code"], withholding_city=data["withholding_city"], gross=data["gross"],
            tax=data["tax"], net=data["net"], paid_at=data["paid_at"], payout_kind=data["kind"],
        ), rules, at=source.time)

    def payout_reversed(taxpayer: Taxpayer, source: Envelope) -> list[Event]:
        data = source.data
        return taxpayer.take(PayoutReversal(data["withdrawal_id"], data["payout_id"], data["reason"], data["reversed_at"]),
                             rules, at=source.time)

    return {
        PARTICIPANT_REGISTERED: _decide(store, participant_registered),
        FUND_ACCOUNT_OPENED: _decide(store, fund_account_opened),
        CONTRIBUTION_RECEIVED: _decide(store, contribution_received),
        CONTRIBUTION_REVERSED: _decide(store, contribution_reversed),
        PAYOUT_MADE: _decide(store, payout_made),
        PAYOUT_REVERSED: _decide(store, payout_reversed),
    }
