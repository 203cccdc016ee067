"""HTTP API of the payout service (INTERFACES.md §5) and its operator views."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from pension_payout.adapters.payments import RecordingPaymentAdapter
from pension_payout.adapters.tables import payees, withdrawals
from pension_payout.application.handlers import change_method, create_withdrawal
from pension_payout.domain.schedule import Plan
from pension_shared.auth import Principal
from pension_shared.clock import rfc3339
from pension_shared.errors import Forbidden, NotFound, ValidationFailed
from pension_shared.ledger import Metadata
from pension_shared.money import InvalidAmount, parse_yuan
from pension_shared.runtime import ServiceContext
from pension_shared.web import MinPosition, StrictModel, Yuan, correlation_id, execute_command


class PlanRequest(StrictModel):
    method: Literal["monthly", "installments", "lump_sum"]
    months: Annotated[int, Field(ge=1, le=1200)] | None = None
    monthly_amount: Yuan | None = None
    installments: Annotated[int, Field(ge=1, le=1200)] | None = None

    def plan(self) -> Plan:
        try:
            amount = parse_yuan(self.monthly_amount) if self.monthly_amount is not None else None
        except InvalidAmount as exc:
            raise ValidationFailed(f"monthly_amount: {exc}", errors=[
                {"location": ["body", "monthly_amount"], "message": str(exc)}]) from exc
        plan = Plan(self.method, self.months, amount, self.installments)
        plan.validate()
        return plan


class WithdrawalRequest(PlanRequest):
    participant_id: Annotated[str, Field(min_length=1, max_length=40)]


class FailingBank(StrictModel):
    failing: bool


_WITHDRAWAL_OWNER = sa.select(withdrawals.c.participant_id).where(withdrawals.c.withdrawal_id == sa.bindparam("withdrawal_id"))
"""Whose a withdrawal is: what a read of it given ``?min_position=`` waits for."""


def withdrawals_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/withdrawals", tags=["withdrawals"])
    edge, store, clock = ctx.edge, ctx.store, ctx.clock

    def meta() -> Metadata:
        return Metadata(time=rfc3339(clock.now()), correlation_id=correlation_id.get())

    def view(conn: sa.Connection, withdrawal_id: str, principal: Principal) -> dict:
        row = conn.execute(sa.select(withdrawals).where(withdrawals.c.withdrawal_id == withdrawal_id)).one_or_none()
        if row is None or (principal.role == "bank" and not principal.is_bank(row.bank_code)):
            raise NotFound(f"no withdrawal {withdrawal_id}")
        return orjson.loads(row.view)

    @router.post("", status_code=201)
    async def create(body: WithdrawalRequest, request: Request, principal: Principal = edge.roles("bank")) -> JSONResponse:
        plan = body.plan()

        def work(conn: sa.Connection) -> tuple[int, dict]:
            started = create_withdrawal(conn, store, principal, body.participant_id, plan, meta())
            return 201, {**view(conn, started["withdrawal_id"], principal), "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    @router.get("")
    def list_for_participant(participant_id: str, principal: Principal = edge.roles("bank", "operator"),
                             min_position: MinPosition = None) -> dict:
        """The participant's withdrawals (their own, and the inheritance after their death)."""
        ctx.wait_for(min_position, participant_id)
        with ctx.engine.connect() as conn:
            rows = conn.execute(sa.select(withdrawals).where(withdrawals.c.participant_id == participant_id)
                                .order_by(withdrawals.c.withdrawal_id)).all()
        visible = [orjson.loads(r.view) for r in rows if principal.role == "operator" or principal.is_bank(r.bank_code)]
        return {"items": visible, "next": None}

    @router.get("/{withdrawal_id}")
    def read(withdrawal_id: str, principal: Principal = edge.roles("bank", "operator"),
             min_position: MinPosition = None) -> dict:
        ctx.wait_for_owner(min_position, _WITHDRAWAL_OWNER, withdrawal_id=withdrawal_id)
        with ctx.engine.connect() as conn:
            return view(conn, withdrawal_id, principal)

    @router.put("/{withdrawal_id}/method")
    async def change(withdrawal_id: str, body: PlanRequest, request: Request,
                     principal: Principal = edge.roles("bank")) -> JSONResponse:
        plan = body.plan()

        def work(conn: sa.Connection) -> tuple[int, dict]:
            changed = change_method(conn, store, principal, withdrawal_id, plan, meta())
            return 200, {**view(conn, withdrawal_id, principal), "applies_from_instalment": changed["from_instalment"],
                         "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    return router


def ops_router(ctx: ServiceContext, recording: RecordingPaymentAdapter | None) -> APIRouter:
    """Operator views of the payout service, and the embedded payment adapter's controls."""
    router = APIRouter(prefix="/v1/ops/payout", tags=["operations"])

    @router.get("/participants/{participant_id}")
    def participant(participant_id: str, _: Principal = ctx.edge.roles("operator")) -> dict:
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(payees).where(payees.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise NotFound(f"the payout service knows no participant {participant_id}")
        return {"participant_id": row.participant_id, "ss_card_account": {
            "bank_code": row.bank_code, "account_number": row.account_number_masked}}

    @router.get("/payments")
    def payments(_: Principal = ctx.edge.roles("operator")) -> dict:
        if recording is None:
            raise Forbidden("payments are made by the bank-payment endpoint here")
        return {"items": recording.payments(), "next": None}

    @router.put("/failing-banks/{bank_code}")
    def set_failing(bank_code: str, body: FailingBank, _: Principal = ctx.edge.roles("operator")) -> dict:
        if recording is None:
            raise Forbidden("payments are made by the bank-payment endpoint here")
        recording.set_failing(bank_code, body.failing)
        return {"bank_code": bank_code, "failing": body.failing}

    return router
