"""How the information platform reacts to the other services' reports (fund accounts, payouts,
deductions and tax): each becomes a fact in the platform's own ledger (so the platform replays
from zero on its own), citing the event it came from. Only amounts are recorded from the tax
feed: the identity it carries is the platform's own already."""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pension_account.adapters.tables import contribution_years, participants
from pension_account.domain.bank_change import BankChangeAnswers
from pension_account.domain.participant import participant_stream
from pension_account.domain.records import (
    CONTRIBUTION_RECORDED, DEDUCTION_RECORDED, FUND_ACCOUNT_BOUND, INVESTMENT_KINDS, INVESTMENT_RECORDED, TAX_RECORDED,
    WITHDRAWAL_RECORDED,
)
from pension_shared.clock import business_date, business_year, parse_rfc3339
from pension_shared.consumer import reads_only_streams
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent, Stream
from pension_shared.policy import policy_on

Policy = Callable[[Connection, Envelope], None]

FUND_ACCOUNT = "cn.pension.fund-account"
PAYOUT = "cn.pension.payout"
TAX = "cn.pension.tax"


def _participant(store: EventStore, conn: Connection, source: Envelope) -> Stream:
    stream = store.load(conn, participant_stream(source.subject))
    if not stream.version:
        raise LookupError(f"participant {source.subject} is not registered on the platform")
    return stream


def _participant_head(source: Envelope) -> list[str]:
    """The stream ``_record`` appends to after its head, read ahead for a batch by the consumer."""
    return [participant_stream(source.subject)]


def _record(
    store: EventStore, conn: Connection, source: Envelope, name: str, data: dict[str, Any], stream: Stream | None = None,
) -> None:
    """Record what another service reported on the participant's stream: after the stream the
    caller loaded to decide, else after its head (the record does not depend on the history)."""
    meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
    cited = {**data, "source_event": {"id": source.id, "type": source.type, "source": source.source}}
    recorded = [NewEvent(name, cited, subject=source.subject)]
    if stream is not None:
        store.append(conn, stream.stream_id, stream.version, recorded, meta)
        return
    try:
        store.append_to_existing(conn, participant_stream(source.subject), recorded, meta)
    except LookupError:
        raise LookupError(f"participant {source.subject} is not registered on the platform") from None


def policies(store: EventStore) -> dict[str, Policy]:
    @reads_only_streams(heads=_participant_head)
    def fund_account_opened(conn: Connection, source: Envelope) -> None:
        data = source.data
        _record(store, conn, source, FUND_ACCOUNT_BOUND, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "bank_code": data["bank_code"], "branch_city": data["branch_city"], "bound_at": data["opened_at"],
        })

    @reads_only_streams(heads=_participant_head)
    def contribution_received(conn: Connection, source: Envelope) -> None:
        data = source.data
        _record(store, conn, source, CONTRIBUTION_RECORDED, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "contribution_id": data["contribution_id"], "year": data["year"], "amount": data["amount"],
            "channel": data["channel"], "contributed_this_year": data["contributed_this_year"],
            "remaining_quota": data["remaining_quota"],
        })

    @reads_only_streams(heads=_participant_head)
    def investment(conn: Connection, source: Envelope) -> None:
        data = source.data
        kind = INVESTMENT_KINDS[source.event_type.name]
        amount = data.get("amount", data.get("proceeds"))
        _record(store, conn, source, INVESTMENT_RECORDED, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "kind": kind, "product_code": data.get("product_code"), "amount": amount,
            "year": business_year(parse_rfc3339(source.time)),
        })

    def bank_change_requested(conn: Connection, source: Envelope) -> None:
        """A-CHG-1/2: the platform confirms the change with the year's remaining quota, which the
        new bank receives, or refuses it (the person has died, the account is closed)."""
        stream = _participant(store, conn, source)
        answers = BankChangeAnswers.from_events((e.event_type.name, e.data) for e in stream.events)
        on = business_date(parse_rfc3339(source.data["requested_at"]))
        status, remaining = _status_and_remaining_quota(conn, source.subject, on.year, policy_on(on).annual_contribution_cap)
        answer = answers.answer(source.data, status=status, year=on.year, remaining_quota=remaining)
        if answer is not None:
            _record(store, conn, source, *answer, stream=stream)

    @reads_only_streams
    def bank_change_completed(conn: Connection, source: Envelope) -> None:
        stream = _participant(store, conn, source)
        answers = BankChangeAnswers.from_events((e.event_type.name, e.data) for e in stream.events)
        recorded = answers.record_completion(source.data)
        if recorded is not None:
            _record(store, conn, source, *recorded, stream=stream)

    @reads_only_streams(heads=_participant_head)
    def payout_made(conn: Connection, source: Envelope) -> None:
        data = source.data
        _record(store, conn, source, WITHDRAWAL_RECORDED, {
            "participant_id": data["participant_id"], "withdrawal_id": data["withdrawal_id"],
            "payout_id": data["payout_id"], "fund_account_id": data["fund_account_id"], "kind": data["kind"],
            "amount": data["gross"], "tax": data["tax"], "net": data["net"],
            "year": business_year(parse_rfc3339(data["paid_at"])),
        })

    def deduction(sign: int) -> Policy:
        @reads_only_streams(heads=_participant_head)
        def policy(conn: Connection, source: Envelope) -> None:
            data = source.data
            _record(store, conn, source, DEDUCTION_RECORDED, {
                "participant_id": source.subject, "voucher_no": data["voucher_no"], "year": data["year"],
                "amount": sign * data["deductible_amount"], "voided": sign < 0,
            })
        return policy

    def tax(sign: int) -> Policy:
        @reads_only_streams(heads=_participant_head)
        def policy(conn: Connection, source: Envelope) -> None:
            data = source.data
            _record(store, conn, source, TAX_RECORDED, {
                "participant_id": source.subject, "payout_id": data["payout_id"], "year": data["year"],
                "amount": sign * data["tax"], "reversed": sign < 0,
            })
        return policy

    handlers: dict[str, Policy] = {
        f"{PAYOUT}.PayoutMade.v1": payout_made,
        f"{TAX}.DeductionVoucherIssued.v1": deduction(+1),
        f"{TAX}.DeductionVoucherVoided.v1": deduction(-1),
        f"{TAX}.WithdrawalTaxWithheld.v1": tax(+1),
        f"{TAX}.WithdrawalTaxWithholdingReversed.v1": tax(-1),
        f"{FUND_ACCOUNT}.FundAccountOpened.v1": fund_account_opened,
        f"{FUND_ACCOUNT}.ContributionReceived.v1": contribution_received,
        f"{FUND_ACCOUNT}.BankChangeRequested.v1": bank_change_requested,
        f"{FUND_ACCOUNT}.BankChangeCompleted.v1": bank_change_completed,
    }
    for name in INVESTMENT_KINDS:
        handlers[f"{FUND_ACCOUNT}.{name}.v1"] = investment
    return handlers


def _status_and_remaining_quota(conn: Connection, participant_id: str, year: int, cap: int) -> tuple[str, int]:
    """From the platform's read models, written in the same transactions as its events: the
    account's status and what is left of the year's quota after the contributions recorded."""
    status = conn.execute(
        sa.select(participants.c.status).where(participants.c.participant_id == participant_id)
    ).scalar_one()
    remaining = conn.execute(
        sa.select(contribution_years.c.remaining_quota)
        .where(contribution_years.c.participant_id == participant_id, contribution_years.c.year == year)
    ).scalar_one_or_none()
    return status, cap if remaining is None else remaining
