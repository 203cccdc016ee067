"""One handler per command: load the aggregates, let them decide, append in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Mapping, Sequence

from sqlalchemy.engine import Connection

from pension_fund_account.adapters.streams import lock_stream, named_events
from pension_fund_account.application.commands import (
    Contribute, CreditIncome, ListProduct, OpenFundAccount, PurchaseProduct, RedeemProduct,
)
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
    participant = store.load(conn, participant_stream(cmd.participant_id))
    funds = ParticipantFunds.from_events(cmd.participant_id, named_events(participant))
    fund_account_id = f"FA{uuid.uuid4().hex[:20].upper()}"
    assigned = funds.assign_fund_account(fund_account_id, cmd.bank_code, assigned_at=meta.time)
    opened = FundAccount(fund_account_id).open(
        participant_id=cmd.participant_id, bank_code=cmd.bank_code, branch_city=cmd.branch_city, opened_at=meta.time,
    )
    _append(conn, store, participant, [assigned], cmd.participant_id, meta)
    store.append(conn, fund_account_stream(fund_account_id), 0, [_new(opened, cmd.participant_id)], meta)
    return fund_account_id


def contribute(conn: Connection, store: EventStore, cmd: Contribute, meta: Metadata) -> Mapping[str, Any]:
    """Both streams in one transaction, each at its expected version: never a fen over the cap
    across banks, never a contribution lost to a race."""
    stream, account = _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
    participant_id = account.participant_id
    assert participant_id is not None
    lock_stream(conn, participant_stream(participant_id))
    participant = store.load(conn, participant_stream(participant_id))
    stream, account = _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
    funds = ParticipantFunds.from_events(participant_id, named_events(participant))
    received, registered = account.receive_contribution(
        funds, contribution_id=f"C{uuid.uuid4().hex[:20].upper()}", amount=cmd.amount, channel=cmd.channel,
        reference=cmd.reference, on=_today(meta),
    )
    _append(conn, store, stream, [received], participant_id, meta)
    _append(conn, store, participant, [registered], participant_id, meta)
    return received.data


def purchase_product(conn: Connection, store: EventStore, cmd: PurchaseProduct, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
    product = _listing(conn, store, cmd.product_code).eligible_product(policy_on(_today(meta)))
    units = cmd.units if cmd.units is not None else units_for_yuan_amount(cmd.amount)
    purchased = account.purchase(product, amount=cmd.amount, units=units)
    _append(conn, store, stream, [purchased], account.participant_id, meta)
    return purchased.data


def redeem_product(conn: Connection, store: EventStore, cmd: RedeemProduct, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
    redeemed = account.redeem(cmd.product_code, units=cmd.units, proceeds=cmd.proceeds)
    _append(conn, store, stream, [redeemed], account.participant_id, meta)
    return redeemed.data


def credit_income(conn: Connection, store: EventStore, cmd: CreditIncome, meta: Metadata) -> Mapping[str, Any]:
    stream, account = _held_account(conn, store, cmd.fund_account_id, cmd.bank_code)
    if cmd.product_code is not None and _listing(conn, store, cmd.product_code).product is None:
        raise InvalidRequest(f"{cmd.product_code} is not a listed product")
    credited = account.credit_income(amount=cmd.amount, kind=cmd.kind, product_code=cmd.product_code)
    _append(conn, store, stream, [credited], account.participant_id, meta)
    return credited.data


def list_product(conn: Connection, store: EventStore, cmd: ListProduct, meta: Metadata) -> Mapping[str, Any]:
    stream = store.load(conn, product_stream(cmd.product_code))
    listing = ProductListing.from_events(cmd.product_code, named_events(stream))
    listed = listing.list(
        name=cmd.name, product_type=cmd.product_type, eligible_from=cmd.eligible_from, listed_at=meta.time,
    )
    _append(conn, store, stream, [listed], cmd.product_code, meta)
    return listed.data


def _held_account(conn: Connection, store: EventStore, fund_account_id: str, bank_code: str) -> tuple[Stream, FundAccount]:
    stream = store.load(conn, fund_account_stream(fund_account_id))
    return stream, FundAccount.from_events(fund_account_id, named_events(stream)).held_by(bank_code)


def _listing(conn: Connection, store: EventStore, product_code: str) -> ProductListing:
    return ProductListing.from_events(product_code, named_events(store.load(conn, product_stream(product_code))))


def _today(meta: Metadata) -> date:
    return business_date(parse_rfc3339(meta.time))


def _new(event: Event, subject: str | None) -> NewEvent:
    assert subject is not None
    return NewEvent(event.name, event.data, subject=subject)


def _append(conn: Connection, store: EventStore, stream: Stream, decided: Sequence[Event], subject: str | None, meta: Metadata) -> None:
    store.append(conn, stream.stream_id, stream.version, [_new(e, subject) for e in decided], meta)
