"""How the payout service reacts to other services' events (one policy per consumed event).

From the platform: who the payee is, receiving status, death (which opens an inheritance).
From the fund account: which account the participant holds and where it was opened (the
withholding city), and the outcome of each payout's debit or refund."""

from __future__ import annotations

import uuid
from typing import Any, Callable

from sqlalchemy.engine import Connection

from pension_payout.domain.participants import (
    DEATH_NOTED, FUND_ACCOUNT_NOTED, PAYEE_REGISTERED, RECEIVING_NOTED, WITHDRAWAL_ASSIGNED, Payee, payee_stream,
)
from pension_payout.domain.withdrawal import (
    PAYMENTS_WITHHELD, PAYOUT_COMPENSATED, PAYOUT_DEBIT_RECORDED, WITHDRAWAL_COMPLETED, WITHDRAWAL_STARTED,
    Withdrawal, withdrawal_stream,
)
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.policy import policy_on

Policy = Callable[[Connection, Envelope], None]

ACCOUNT = "cn.pension.account"
FUND_ACCOUNT = "cn.pension.fund-account"


def _meta(source: Envelope) -> Metadata:
    return Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)


def load_payee(store: EventStore, conn: Connection, participant_id: str):  # noqa: ANN201
    stream = store.load(conn, payee_stream(participant_id))
    return stream, Payee.from_events(participant_id, ((e.event_type.name, e.data) for e in stream.events))


def load_withdrawal(store: EventStore, conn: Connection, withdrawal_id: str):  # noqa: ANN201
    stream = store.load(conn, withdrawal_stream(withdrawal_id))
    return stream, Withdrawal.from_events(withdrawal_id, ((e.event_type.name, e.data) for e in stream.events))


def policies(store: EventStore) -> dict[str, Policy]:
    def note(conn: Connection, source: Envelope, name: str, data: dict[str, Any], *,
             require_known: bool = True) -> tuple[int, Payee]:
        """Record ``name`` on the payee's stream; the stream's version and the payee after it."""
        stream, payee = load_payee(store, conn, source.subject)
        if require_known and not payee.registered:
            raise LookupError(f"participant {source.subject} is not known to the payout service yet")
        store.append(conn, stream.stream_id, stream.version, [NewEvent(name, data, subject=source.subject)], _meta(source))
        return stream.version + 1, Payee.from_events(
            source.subject, [*((e.event_type.name, e.data) for e in stream.events), (name, data)])

    def participant_registered(conn: Connection, source: Envelope) -> None:
        stream, payee = load_payee(store, conn, source.subject)
        if payee.registered:
            return
        data = source.data
        note(conn, source, PAYEE_REGISTERED, {
            "participant_id": data["participant_id"], "bank_code": data["ss_card_account"]["bank_code"],
            "account_number_masked": data["ss_card_account"]["account_number_masked"],
            "payee_sealed": data["payee_sealed"],
        }, require_known=False)

    def participant_receiving(conn: Connection, source: Envelope) -> None:
        note(conn, source, RECEIVING_NOTED, {"participant_id": source.subject, "since": source.data["since"],
                                             "condition": source.data["condition"]})

    def fund_account_opened(conn: Connection, source: Envelope) -> None:
        """Noted even before the participant's registration: the two come on different topics,
        which are not ordered with each other, and the payee's state does not depend on the order."""
        data = source.data
        version, payee = note(conn, source, FUND_ACCOUNT_NOTED, {
            "participant_id": source.subject, "fund_account_id": data["fund_account_id"], "bank_code": data["bank_code"],
            "branch_city": data["branch_city"],
        }, require_known=False)
        if payee.inheritance_due:  # the death came first, on the other topic
            start_inheritance(conn, version, payee, source)

    def participant_died(conn: Connection, source: Envelope) -> None:
        """Death opens the inheritance (A-INH-1): the whole balance, holdings redeemed, goes to the
        heirs by share with 3 % withheld (B-2); any running withdrawal stops."""
        data = source.data
        version, payee = note(conn, source, DEATH_NOTED, {
            "participant_id": source.subject, "date_of_death": data["date_of_death"], "heirs": data["heirs"],
            "heirs_sealed": data["heirs_sealed"],
        })
        for withdrawal_id in payee.withdrawal_ids:
            w_stream, withdrawal = load_withdrawal(store, conn, withdrawal_id)
            if withdrawal.status == "active":
                store.append(conn, w_stream.stream_id, w_stream.version, [NewEvent(
                    WITHDRAWAL_COMPLETED, {"withdrawal_id": withdrawal_id, "reason": "superseded_by_inheritance"},
                    subject=source.subject)], _meta(source))
        if payee.inheritance_due:  # else it starts when the fund account is noted (or there is none)
            start_inheritance(conn, version, payee, source)

    def start_inheritance(conn: Connection, payee_version: int, payee: Payee, source: Envelope) -> None:
        """The inheritance, started by the later of the death and the fund account's opening,
        whichever topic brought it; its id derives from that event, so a redelivery starts nothing."""
        withdrawal_id = f"WI{uuid.uuid5(uuid.NAMESPACE_URL, source.id).hex[:20].upper()}"
        start_withdrawal(store, conn, payee, payee_version, withdrawal_id=withdrawal_id, kind="inheritance",
                         plan_data={"method": "lump_sum"}, first_due=business_date(parse_rfc3339(source.time)).isoformat(),
                         meta=_meta(source), heirs=payee.heirs)

    def payout_debited(conn: Connection, source: Envelope) -> None:
        data = source.data
        stream, withdrawal = load_withdrawal(store, conn, data["withdrawal_id"])
        instalment = next((i for i in withdrawal.instalments.values() if i.payout_id == data["payout_id"]), None)
        if instalment is None or instalment.status != "instructed":
            return
        _, payee = load_payee(store, conn, withdrawal.participant_id)
        debited = {"withdrawal_id": withdrawal.withdrawal_id, "payout_id": data["payout_id"], "gross": data["gross"],
                   "balance_after": data["balance_after"], "fund_account_id": data["fund_account_id"],
                   "bank_code": data["bank_code"], "withholding_city": data["branch_city"]}
        withdrawal.apply(PAYOUT_DEBIT_RECORDED, debited)
        tax = policy_on(business_date(parse_rfc3339(source.time))).withdrawal_tax
        withheld = withdrawal.withhold(data["payout_id"], gross=data["gross"], tax_of=tax,
                                       payee=(payee.bank_code, payee.account_number_masked))
        events = [NewEvent(PAYOUT_DEBIT_RECORDED, debited, subject=withdrawal.participant_id),
                  NewEvent(PAYMENTS_WITHHELD, withheld, subject=withdrawal.participant_id)]
        if data["gross"] == 0:  # the account it was taken from is empty: the fund account closes it (B-5)
            events.append(NewEvent(WITHDRAWAL_COMPLETED, {
                "withdrawal_id": withdrawal.withdrawal_id, "reason": "exhausted", "fund_account_id": data["fund_account_id"],
            }, subject=withdrawal.participant_id))
        store.append(conn, stream.stream_id, stream.version, events, _meta(source))

    def payout_debit_refused(conn: Connection, source: Envelope) -> None:
        """The fund account could not be debited. Frozen for a bank change: the instalment settles
        without money and later ones take more (an inheritance tries again the next day). Closed:
        it is the participant's current account, so nothing is left and the withdrawal ends."""
        data = source.data
        stream, withdrawal = load_withdrawal(store, conn, data["withdrawal_id"])
        instalment = next((i for i in withdrawal.instalments.values() if i.payout_id == data["payout_id"]), None)
        if instalment is None or instalment.status != "instructed":
            return
        events = withdrawal.not_debited(data["payout_id"], reason=data["reason"],
                                        account_status=_refused_account_status(data), refused_at=source.time)
        store.append(conn, stream.stream_id, stream.version,
                     [NewEvent(name, event, subject=withdrawal.participant_id) for name, event in events], _meta(source))

    def payout_refunded(conn: Connection, source: Envelope) -> None:
        data = source.data
        stream, withdrawal = load_withdrawal(store, conn, data["withdrawal_id"])
        instalment = next((i for i in withdrawal.instalments.values() if i.payout_id == data["payout_id"]), None)
        if instalment is None or instalment.status != "refunding":
            return
        store.append(conn, stream.stream_id, stream.version, [NewEvent(PAYOUT_COMPENSATED, {
            "withdrawal_id": withdrawal.withdrawal_id, "payout_id": data["payout_id"], "amount": data["amount"],
        }, subject=withdrawal.participant_id)], _meta(source))

    return {
        f"{ACCOUNT}.ParticipantRegistered.v1": participant_registered,
        f"{ACCOUNT}.ParticipantReceiving.v1": participant_receiving,
        f"{ACCOUNT}.ParticipantDied.v1": participant_died,
        f"{FUND_ACCOUNT}.FundAccountOpened.v1": fund_account_opened,
        f"{FUND_ACCOUNT}.PayoutDebited.v1": payout_debited,
        f"{FUND_ACCOUNT}.PayoutRefunded.v1": payout_refunded,
        f"{FUND_ACCOUNT}.PayoutDebitRefused.v1": payout_debit_refused,
    }


def _refused_account_status(refused: dict[str, Any]) -> str | None:
    """The refused account's status; refusals published before they carried it said so only in
    their reason, "the fund account is frozen" or "the fund account is closed"."""
    if "account_status" in refused:
        return refused["account_status"]
    prefix = "the fund account is "
    return refused["reason"].removeprefix(prefix) if refused["reason"].startswith(prefix) else None


def start_withdrawal(
    store: EventStore, conn: Connection, payee: Payee, payee_version: int, *, withdrawal_id: str, kind: str,
    plan_data: dict[str, Any], first_due: str, meta: Metadata, heirs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from datetime import date

    from pension_payout.domain.schedule import Plan

    started = Withdrawal(withdrawal_id).start(
        participant_id=payee.participant_id, fund_account_id=payee.fund_account_id or "",
        bank_code=payee.fund_bank_code or "", withholding_city=payee.withholding_city or "",
        plan=Plan.from_data(plan_data), first_due=date.fromisoformat(first_due), kind=kind, started_at=meta.time,
        heirs=heirs,
    )
    store.append(conn, withdrawal_stream(withdrawal_id), 0, [NewEvent(WITHDRAWAL_STARTED, started, subject=payee.participant_id)], meta)
    store.append(conn, payee_stream(payee.participant_id), payee_version, [NewEvent(
        WITHDRAWAL_ASSIGNED, {"participant_id": payee.participant_id, "withdrawal_id": withdrawal_id, "kind": kind},
        subject=payee.participant_id)], meta)
    return started
