"""One handler per command: load the aggregates, let them decide, append in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Mapping, Sequence

from sqlalchemy.engine import Connection

from pension_fund_account.adapters.streams import lock_participant_of_account, lock_stream, named_events
from pension_fund_account.application.commands import (
    Contribute, CreditIncome, ListProduct, OpenFundAccount, PurchaseProduct, RedeemProduct, RequestBankChange,
)
from pension_fund_account.domain import bank_change
from pension_fund_account.domain.bank_change import BankChangeDecision
from pension_fund_account.domain.errors import InvalidRequest
from pension_fund_account.domain.events import Event, fund_account_stream, participant_stream, product_stream
from pension_fund_account.domain.fund_account import FundAccount
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_shared.policy import policy_on
from pension_fund_account.domain.products import ProductListing
from pension_fund_account.domain.units import units_for_yuan_amount
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.ledger import EventStore, Metadata, NewEvent, Stream


def open_fund_account(conn: Connection, store: EventStore, cmd: OpenFundAccount, meta: Metadata) -> str:
    participant, funds = load_funds(conn, store, cmd.participant_id)
    fund_account_id = f"FA{uuid.uuid4().hex[:20].upper()}"
    assigned = funds.assign_fund_account(fund_account_id, cmd.bank_code, assigned_at=meta.time)
    opened = FundAccount(fund_account_id).open(
        participant_id=cmd.participant_id, bank_code=cmd.bank_code, branch_city=cmd.branch_city, opened_at=meta.time,
    )
    append_decided(conn, store, participant, [assigned], cmd.participant_id, meta)
    store.append(conn, fund_account_stream(fund_account_id), 0, [_new(opened, cmd.participant_id)], meta)
    return fund_account_id


def contribute(conn: Connection, store: EventStore, cmd: Contribute, meta: Metadata) -> Mapping[str, Any]:
    """Both streams in one transaction, each at its expected version: never a fen over the cap
    across banks, never a contribution lost to a race."""
    # The account's participant never changes: read it from the read model and lock the person
    # (one round trip), then load both streams under the lock (one more), and write both
    # appends together (one more).
    participant_id = lock_participant_of_account(conn, cmd.fund_account_id)
    if participant_id is None:  # no such account: refused as the aggregate refuses it
        _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
        raise AssertionError(f"fund account {cmd.fund_account_id} has no read model row but exists")
    funds_id, account_id = participant_stream(participant_id), fund_account_stream(cmd.fund_account_id)
    loaded = store.load_many(conn, [funds_id, account_id],
                             snapshots={funds_id: ParticipantFunds.SNAPSHOT, account_id: FundAccount.SNAPSHOT})
    participant, stream = loaded[funds_id], loaded[account_id]
    account = _fold_account(cmd.fund_account_id, stream).held_by(cmd.bank_code)
    funds = _fold_funds(participant_id, participant)
    received, registered = account.receive_contribution(
        funds, contribution_id=f"C{uuid.uuid4().hex[:20].upper()}", amount=cmd.amount, channel=cmd.channel,
        reference=cmd.reference, on=_today(meta),
    )
    with store.deferred(conn):
        append_decided(conn, store, stream, [received], participant_id, meta, folded=account)
        append_decided(conn, store, participant, [registered], participant_id, meta, folded=funds)
    return received.data


def purchase_product(conn: Connection, store: EventStore, cmd: PurchaseProduct, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _account_under_lock(conn, store, cmd.fund_account_id, cmd.bank_code)
    product = _listing(conn, store, cmd.product_code).eligible_product(policy_on(_today(meta)))
    units = cmd.units if cmd.units is not None else units_for_yuan_amount(cmd.amount)
    purchased = account.purchase(product, amount=cmd.amount, units=units)
    append_decided(conn, store, stream, [purchased], account.participant_id, meta, folded=account)
    return purchased.data


def redeem_product(conn: Connection, store: EventStore, cmd: RedeemProduct, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _account_under_lock(conn, store, cmd.fund_account_id, cmd.bank_code)
    redeemed = account.redeem(cmd.product_code, units=cmd.units, proceeds=cmd.proceeds)
    append_decided(conn, store, stream, [redeemed], account.participant_id, meta, folded=account)
    return redeemed.data


def credit_income(conn: Connection, store: EventStore, cmd: CreditIncome, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _account_under_lock(conn, store, cmd.fund_account_id, cmd.bank_code)
    if cmd.product_code is not None and _listing(conn, store, cmd.product_code).product is None:
        raise InvalidRequest(f"{cmd.product_code} is not a listed product")
    credited = account.credit_income(amount=cmd.amount, kind=cmd.kind, product_code=cmd.product_code)
    append_decided(conn, store, stream, [credited], account.participant_id, meta, folded=account)
    return credited.data


def list_product(conn: Connection, store: EventStore, cmd: ListProduct, meta: Metadata) -> Mapping[str, Any]:
    stream = store.load(conn, product_stream(cmd.product_code))
    listing = ProductListing.from_events(cmd.product_code, named_events(stream))
    listed = listing.list(
        name=cmd.name, product_type=cmd.product_type, eligible_from=cmd.eligible_from, listed_at=meta.time,
    )
    append_decided(conn, store, stream, [listed], cmd.product_code, meta)
    return listed.data


def request_bank_change(conn: Connection, store: EventStore, cmd: RequestBankChange, meta: Metadata) -> str:
    """A-CHG-1/6: the request and the freeze of the old account, in one transaction."""
    stream, account = _account_under_lock(conn, store, cmd.fund_account_id, cmd.bank_code)
    participant_id = account.participant_id
    assert participant_id is not None
    participant, funds = load_funds(conn, store, participant_id)
    bank_change_id = f"BC{uuid.uuid4().hex[:20].upper()}"
    decision = bank_change.request_bank_change(
        funds, account, bank_change_id=bank_change_id, new_bank_code=cmd.new_bank_code,
        new_branch_city=cmd.new_branch_city, on=_today(meta), requested_at=meta.time,
    )
    _record_decision(conn, store, participant, stream, None, decision, participant_id, meta)
    return bank_change_id


def complete_bank_change(
    conn: Connection, store: EventStore, participant_id: str, bank_change_id: str, confirmed_remaining_quota: int,
    meta: Metadata,
) -> BankChangeDecision:
    """The platform confirmed: open, move, close and rebind in one transaction, so no step can be
    lost or done twice. Nothing happens if the change is no longer in progress."""
    lock_stream(conn, participant_stream(participant_id))
    participant, funds = load_funds(conn, store, participant_id)
    change = funds.bank_change_in_progress(bank_change_id)
    if change is None:
        return BankChangeDecision()
    old_stream, old = load_account(conn, store, change.old_fund_account_id)
    new_fund_account_id = f"FA{uuid.uuid4().hex[:20].upper()}"
    decision = bank_change.complete_bank_change(
        funds, old, bank_change_id=bank_change_id, new_fund_account_id=new_fund_account_id,
        confirmed_remaining_quota=confirmed_remaining_quota, completed_at=meta.time,
    )
    new_stream = Stream(fund_account_stream(new_fund_account_id), 0)
    _record_decision(conn, store, participant, old_stream, new_stream, decision, participant_id, meta)
    return decision


def abort_bank_change(
    conn: Connection, store: EventStore, participant_id: str, bank_change_id: str, reason: str, meta: Metadata,
) -> BankChangeDecision:
    """The platform refused: the compensation unfreezes the old account."""
    lock_stream(conn, participant_stream(participant_id))
    participant, funds = load_funds(conn, store, participant_id)
    change = funds.bank_change_in_progress(bank_change_id)
    if change is None:
        return BankChangeDecision()
    old_stream, old = load_account(conn, store, change.old_fund_account_id)
    decision = bank_change.abort_bank_change(funds, old, bank_change_id=bank_change_id, reason=reason, aborted_at=meta.time)
    _record_decision(conn, store, participant, old_stream, None, decision, participant_id, meta)
    return decision


def _record_decision(
    conn: Connection, store: EventStore, participant: Stream, old: Stream, new: Stream | None,
    decision: BankChangeDecision, participant_id: str, meta: Metadata,
) -> None:
    # The new account first: the platform then learns of it (and rebinds) before the completion.
    if new is not None:
        append_decided(conn, store, new, decision.new_account, participant_id, meta)
    append_decided(conn, store, old, decision.old_account, participant_id, meta)
    append_decided(conn, store, participant, decision.participant, participant_id, meta)


def load_account(conn: Connection, store: EventStore, fund_account_id: str) -> tuple[Stream, FundAccount]:
    stream = store.load(conn, fund_account_stream(fund_account_id), snapshot=FundAccount.SNAPSHOT)
    return stream, _fold_account(fund_account_id, stream)


def load_funds(conn: Connection, store: EventStore, participant_id: str) -> tuple[Stream, ParticipantFunds]:
    stream = store.load(conn, participant_stream(participant_id), snapshot=ParticipantFunds.SNAPSHOT)
    return stream, _fold_funds(participant_id, stream)


def _fold_account(fund_account_id: str, stream: Stream) -> FundAccount:
    return FundAccount.from_events(fund_account_id, named_events(stream), stream.snapshot_state)


def _fold_funds(participant_id: str, stream: Stream) -> ParticipantFunds:
    return ParticipantFunds.from_events(participant_id, named_events(stream), stream.snapshot_state)


def _held_account(conn: Connection, store: EventStore, fund_account_id: str, bank_code: str) -> tuple[Stream, FundAccount]:
    stream, account = load_account(conn, store, fund_account_id)
    return stream, account.held_by(bank_code)


def _account_under_lock(conn: Connection, store: EventStore, fund_account_id: str, bank_code: str
                        ) -> tuple[Stream, FundAccount]:
    """``_held_account`` once its person is locked, as a contribution locks it: a purchase,
    redemption, income or bank change request queues behind a contribution to the same person
    instead of racing it for the account's next version (and failing with CONFLICT once its
    retries are spent), and reads the account as it stands under the lock."""
    lock_participant_of_account(conn, fund_account_id)
    return _held_account(conn, store, fund_account_id, bank_code)


def _listing(conn: Connection, store: EventStore, product_code: str) -> ProductListing:
    return ProductListing.from_events(product_code, named_events(store.load(conn, product_stream(product_code))))


def _today(meta: Metadata) -> date:
    return business_date(parse_rfc3339(meta.time))


def _new(event: Event, subject: str | None) -> NewEvent:
    assert subject is not None
    return NewEvent(event.name, event.data, subject=subject)


def append_decided(
    conn: Connection, store: EventStore, stream: Stream, decided: Sequence[Event], subject: str | None, meta: Metadata,
    *, folded: FundAccount | ParticipantFunds | None = None,
) -> None:
    """Append what was decided after ``stream``; given the aggregate ``folded`` from it (and not
    changed since), a snapshot of it is kept when one is due."""
    recorded = store.append_to(conn, stream, [_new(e, subject) for e in decided], meta)
    if folded is not None:
        store.snapshot_after(conn, stream, recorded, folded.SNAPSHOT, lambda: _with(folded, decided).snapshot_state())


def _with(folded: FundAccount | ParticipantFunds, decided: Sequence[Event]) -> FundAccount | ParticipantFunds:
    """The aggregate with what it decided folded in."""
    for event in decided:
        folded.apply(event.name, event.data)
    return folded
