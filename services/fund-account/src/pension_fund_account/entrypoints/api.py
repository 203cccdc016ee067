"""HTTP API of the fund-account service: the closed loop (INTERFACES.md §3)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Callable, Literal, Mapping

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from pension_fund_account.adapters.tables import (
    bank_changes, fund_accounts, holdings, known_participants, participant_quota, products,
)
from pension_fund_account.application.commands import (
    Contribute, CreditIncome, ListProduct, OpenFundAccount, PurchaseProduct, RedeemProduct, RequestBankChange,
)
from pension_fund_account.application.handlers import (
    contribute, credit_income, list_product, open_fund_account, purchase_product, redeem_product, request_bank_change,
)
from pension_fund_account.domain.errors import FundAccountNotFound, InvalidRequest
from pension_fund_account.domain.events import MONEY_MOVED, fund_account_stream
from pension_shared.policy import PRODUCT_TYPES, policy_on
from pension_fund_account.domain.units import InvalidUnits, format_units, parse_units
from pension_shared.auth import Principal
from pension_shared.clock import business_date, rfc3339
from pension_shared.errors import NotFound
from pension_shared.idempotency import CommandRunner
from pension_shared.ledger import EventStore, Metadata
from pension_shared.money import InvalidAmount, format_fen, parse_yuan
from pension_shared.runtime import ServiceContext
from pension_shared.web import IsoDate, MinPosition, StrictModel, Yuan, correlation_id, execute_command, render_domain_error

ProductType = Literal[PRODUCT_TYPES]  # type: ignore[valid-type]
ProductCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")]
BankCode = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")]
Units = Annotated[str, Field(description='units with up to six decimals, e.g. "1000.50"')]

MAX_SEQUENCE = 2**63 - 1
"""The largest sequence a database integer holds; a larger cursor is refused, not sent to it."""
_ACCOUNT_OWNER = sa.select(fund_accounts.c.participant_id).where(
    fund_accounts.c.fund_account_id == sa.bindparam("fund_account_id"))
"""Whose a fund account is: what a read of it given ``?min_position=`` waits for."""
CONTRIBUTION_ATTEMPTS = 30
"""Contributions to one person queue on a row lock; the retries only cover the rare conflict
with a purchase or income on the same account."""


class OpenFundAccountRequest(StrictModel):
    participant_id: Annotated[str, Field(min_length=1, max_length=40)]
    branch_city: Annotated[str, Field(min_length=1, max_length=64)]


class ContributionRequest(StrictModel):
    amount: Yuan
    channel: Literal["bank_transfer", "payment_institution", "cash"]
    reference: Annotated[str, Field(min_length=1, max_length=128)]


class PurchaseRequest(StrictModel):
    product_code: ProductCode
    amount: Yuan
    units: Units | None = None


class RedemptionRequest(StrictModel):
    product_code: ProductCode
    units: Units
    proceeds: Yuan


class IncomeRequest(StrictModel):
    amount: Yuan
    kind: Literal["interest", "dividend", "maturity_gain"]
    product_code: ProductCode | None = None


class BankChangeRequest(StrictModel):
    new_bank_code: BankCode
    new_branch_city: Annotated[str, Field(min_length=1, max_length=64)]


class ProductRequest(StrictModel):
    product_code: ProductCode
    name: Annotated[str, Field(min_length=1, max_length=128)]
    product_type: ProductType
    eligible_from: IsoDate


def fund_accounts_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/fund-accounts", tags=["fund accounts"])
    edge, store, clock = ctx.edge, ctx.store, ctx.clock
    contribution_runner = CommandRunner(ctx.engine, render_domain_error, attempts=CONTRIBUTION_ATTEMPTS)

    def meta() -> Metadata:
        return Metadata(time=rfc3339(clock.now()), correlation_id=correlation_id.get())

    async def run(
        request: Request, principal: Principal, decide: Callable[[sa.Connection, Metadata], Mapping[str, Any]],
        *, runner: CommandRunner | None = None, status: int = 200,
    ) -> JSONResponse:
        def work(conn: sa.Connection) -> tuple[int, dict]:
            body = dict(decide(conn, meta()))
            return status, {**body, "position": ctx.returned_position(conn)}

        return await execute_command(runner or ctx.runner, request, principal, work)

    @router.post("", status_code=201)
    async def open_account(
        body: OpenFundAccountRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        command = OpenFundAccount(body.participant_id, bank_code=principal.code or "", branch_city=body.branch_city)

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            fund_account_id = open_fund_account(conn, store, command, m)
            return {"fund_account_id": fund_account_id, "participant_id": command.participant_id,
                    "bank_code": command.bank_code, "status": "active"}

        return await run(request, principal, decide, status=201)

    @router.get("/bank-changes/{bank_change_id}")
    def read_bank_change(bank_change_id: str, principal: Principal = edge.roles("bank", "operator"),
                         min_position: MinPosition = None) -> dict:
        """A bank change as the old bank, the new bank and operators follow it."""
        ctx.wait_for(min_position)
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(bank_changes).where(bank_changes.c.bank_change_id == bank_change_id)).one_or_none()
        if row is None or not (
            principal.role == "operator" or principal.is_bank(row.old_bank_code) or principal.is_bank(row.new_bank_code)
        ):
            raise NotFound(f"no bank change {bank_change_id}")
        return {c: getattr(row, c) for c in (
            "bank_change_id", "participant_id", "status", "old_fund_account_id", "old_bank_code", "new_bank_code",
            "new_branch_city", "new_fund_account_id", "reason", "requested_at", "updated_at",
        )}

    @router.get("/{fund_account_id}")
    def read(
        fund_account_id: str, principal: Principal = edge.roles("bank", "operator"),
        min_position: MinPosition = None,
    ) -> dict:
        ctx.wait_for_owner(min_position, _ACCOUNT_OWNER, fund_account_id=fund_account_id)
        today = business_date(clock.now())
        with ctx.engine.connect() as conn:
            account = _visible_account(conn, fund_account_id, principal)
            held = conn.execute(
                sa.select(holdings, products.c.name, products.c.product_type)
                .join(products, products.c.product_code == holdings.c.product_code, isouter=True)
                .where(holdings.c.fund_account_id == fund_account_id).order_by(holdings.c.product_code)
            ).all()
            contributed = _contributed(conn, account.participant_id, today.year)
        cap = policy_on(today).annual_contribution_cap
        return {
            "fund_account_id": account.fund_account_id,
            "participant_id": account.participant_id,
            "bank_code": account.bank_code,
            "branch_city": account.branch_city,
            "status": account.status,
            "opened_at": account.opened_at,
            "cash_balance": format_fen(account.cash),
            "holdings": [
                {"product_code": h.product_code, "product_name": h.name, "product_type": h.product_type,
                 "units": format_units(h.units), "cost": format_fen(h.cost)}
                for h in held
            ],
            "year": today.year,
            "contributed_this_year": format_fen(contributed),
            "remaining_quota": format_fen(max(cap - contributed, 0)),
            "annual_cap": format_fen(cap),
        }

    @router.post("/{fund_account_id}/contributions", status_code=201)
    async def contribution(
        fund_account_id: str, body: ContributionRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        command = Contribute(fund_account_id, principal.code or "", _fen(body.amount, "amount"), body.channel, body.reference)

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            received = contribute(conn, store, command, m)
            return {
                "contribution_id": received["contribution_id"], "fund_account_id": fund_account_id,
                "amount": format_fen(received["amount"]), "channel": received["channel"], "year": received["year"],
                "contributed_this_year": format_fen(received["contributed_this_year"]),
                "remaining_quota": format_fen(received["remaining_quota"]),
                "cash_balance": format_fen(received["cash_after"]),
            }

        return await run(request, principal, decide, runner=contribution_runner, status=201)

    @router.post("/{fund_account_id}/purchases", status_code=201)
    async def purchase(
        fund_account_id: str, body: PurchaseRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        units = _units(body.units) if body.units is not None else None
        command = PurchaseProduct(fund_account_id, principal.code or "", body.product_code, _fen(body.amount, "amount"), units)

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            purchased = purchase_product(conn, store, command, m)
            return {"fund_account_id": fund_account_id, "product_code": purchased["product_code"],
                    "amount": format_fen(purchased["amount"]), "units": format_units(purchased["units"]),
                    "cash_balance": format_fen(purchased["cash_after"])}

        return await run(request, principal, decide, status=201)

    @router.post("/{fund_account_id}/redemptions", status_code=201)
    async def redemption(
        fund_account_id: str, body: RedemptionRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        command = RedeemProduct(
            fund_account_id, principal.code or "", body.product_code, _units(body.units),
            _fen(body.proceeds, "proceeds", allow_zero=True),
        )

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            redeemed = redeem_product(conn, store, command, m)
            return {"fund_account_id": fund_account_id, "product_code": redeemed["product_code"],
                    "units": format_units(redeemed["units"]), "proceeds": format_fen(redeemed["proceeds"]),
                    "cost_released": format_fen(redeemed["cost_released"]),
                    "realised_gain": format_fen(redeemed["realised_gain"]),
                    "cash_balance": format_fen(redeemed["cash_after"])}

        return await run(request, principal, decide, status=201)

    @router.post("/{fund_account_id}/income", status_code=201)
    async def income(
        fund_account_id: str, body: IncomeRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        command = CreditIncome(fund_account_id, principal.code or "", _fen(body.amount, "amount"), body.kind, body.product_code)

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            credited = credit_income(conn, store, command, m)
            return {"fund_account_id": fund_account_id, "amount": format_fen(credited["amount"]),
                    "kind": credited["kind"], "product_code": credited["product_code"], "taxed": False,
                    "cash_balance": format_fen(credited["cash_after"])}

        return await run(request, principal, decide, status=201)

    @router.post("/{fund_account_id}/bank-change", status_code=202)
    async def change_bank(
        fund_account_id: str, body: BankChangeRequest, request: Request, principal: Principal = edge.roles("bank"),
    ) -> JSONResponse:
        """A-CHG-1/6: asked of the holding bank; the account is frozen until the platform has
        confirmed and everything has moved to the new bank (or the platform refused)."""
        command = RequestBankChange(fund_account_id, principal.code or "", body.new_bank_code, body.new_branch_city)

        def decide(conn: sa.Connection, m: Metadata) -> Mapping[str, Any]:
            bank_change_id = request_bank_change(conn, store, command, m)
            return {"bank_change_id": bank_change_id, "status": "requested", "fund_account_id": fund_account_id,
                    "new_bank_code": command.new_bank_code}

        return await run(request, principal, decide, status=202)

    @router.get("/{fund_account_id}/ledger")
    def ledger(
        fund_account_id: str, principal: Principal = edge.roles("bank", "operator"),
        after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
        min_position: MinPosition = None,
    ) -> dict:
        ctx.wait_for_owner(min_position, _ACCOUNT_OWNER, fund_account_id=fund_account_id)
        with ctx.engine.connect() as conn:
            _visible_account(conn, fund_account_id, principal)
            entries = store.read_stream(conn, fund_account_stream(fund_account_id), after=after, limit=limit)
        items = [_ledger_entry(store, e) for e in entries]
        return {"items": items, "next": str(entries[-1].sequence) if len(entries) == limit else None}

    return router


def products_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/products", tags=["products"])
    edge, store, clock = ctx.edge, ctx.store, ctx.clock

    @router.get("")
    def list_products(
        _: Principal = edge.roles("bank", "agency", "tax-bureau", "operator"),
        after: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100, min_position: MinPosition = None,
    ) -> dict:
        ctx.wait_for(min_position)
        today = business_date(clock.now())
        policy = policy_on(today)
        query = sa.select(products).order_by(products.c.product_code).limit(limit)
        if after:
            query = query.where(products.c.product_code > after)
        with ctx.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [
            {"product_code": r.product_code, "name": r.name, "product_type": r.product_type,
             "eligible_from": r.eligible_from,
             "eligible_now": date.fromisoformat(r.eligible_from) <= today and policy.product_type_eligible(r.product_type)}
            for r in rows
        ]
        return {"items": items, "next": rows[-1].product_code if len(rows) == limit else None}

    @router.post("", status_code=201)
    async def add_product(body: ProductRequest, request: Request, principal: Principal = edge.roles("operator")) -> JSONResponse:
        command = ListProduct(body.product_code, body.name, body.product_type, body.eligible_from)

        def work(conn: sa.Connection) -> tuple[int, dict]:
            listed = list_product(conn, store, command, Metadata(time=rfc3339(clock.now()), correlation_id=correlation_id.get()))
            return 201, {**{k: listed[k] for k in ("product_code", "name", "product_type", "eligible_from")},
                         "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    return router


def ops_router(ctx: ServiceContext) -> APIRouter:
    """What this service knows of a participant, for operators."""
    router = APIRouter(prefix="/v1/ops/fund-account", tags=["operations"])

    @router.get("/participants/{participant_id}")
    def participant(participant_id: str, _: Principal = ctx.edge.roles("operator")) -> dict:
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(known_participants).where(known_participants.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise NotFound(f"the fund-account service knows no participant {participant_id}")
        return {"participant_id": row.participant_id, "insurance_type": row.insurance_type,
                "insured_region": row.insured_region, "registered_at": row.registered_at}

    return router


def _visible_account(conn: sa.Connection, fund_account_id: str, principal: Principal) -> sa.Row:
    """The holding bank and operators see the account; anyone else gets the same 404 as for no account."""
    row = conn.execute(sa.select(fund_accounts).where(fund_accounts.c.fund_account_id == fund_account_id)).one_or_none()
    if row is None or not (principal.role == "operator" or principal.is_bank(row.bank_code)):
        raise FundAccountNotFound(f"no fund account {fund_account_id}")
    return row


def _contributed(conn: sa.Connection, participant_id: str, year: int) -> int:
    return conn.execute(
        sa.select(participant_quota.c.contributed)
        .where(participant_quota.c.participant_id == participant_id, participant_quota.c.year == year)
    ).scalar_one_or_none() or 0


def _ledger_entry(store: EventStore, envelope: Any) -> dict:
    seen = store.upcasters.upcast(envelope)
    name, data = seen.event_type.name, seen.data
    entry: dict[str, Any] = {
        "sequence": envelope.sequence, "type": name, "time": envelope.time,
        "amounts": {field: format_fen(data[field]) for field in MONEY_MOVED.get(name, ())},
    }
    if "cash_after" in data:
        entry["cash_balance"] = format_fen(data["cash_after"])
    for field in ("contribution_id", "channel", "product_code", "kind", "year", "bank_change_id",
                  "from_fund_account_id", "to_fund_account_id"):
        if data.get(field) is not None:
            entry[field] = data[field]
    if "units" in data:
        entry["units"] = format_units(data["units"])
    entry.update({"event_id": envelope.id, "hash": envelope.hash, "prevhash": envelope.prevhash})
    return entry


def _fen(text: str, field: str, *, allow_zero: bool = False) -> int:
    try:
        return parse_yuan(text, allow_zero=allow_zero)
    except InvalidAmount as exc:
        raise InvalidRequest(f"{field}: {exc}", errors=[{"location": ["body", field], "message": str(exc)}]) from exc


def _units(text: str) -> int:
    try:
        return parse_units(text)
    except InvalidUnits as exc:
        raise InvalidRequest(f"units: {exc}", errors=[{"location": ["body", "units"], "message": str(exc)}]) from exc
