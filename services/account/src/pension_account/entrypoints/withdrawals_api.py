"""HTTP API for withdrawal applications, the agencies' decisions, and death (INTERFACES.md §2)."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from pension_account.adapters.tables import participants, withdrawal_applications
from pension_account.application.withdrawals import HeirInput, apply_for_withdrawal, decide_withdrawal, register_death
from pension_account.domain.participant import NotHeardAtThisBank, ParticipantNotFound
from pension_account.domain.withdrawal import ApplicationNotFound
from pension_shared.auth import Principal
from pension_shared.clock import rfc3339
from pension_shared.errors import Forbidden
from pension_shared.ledger import Metadata
from pension_shared.pii import PersonalDataKey
from pension_shared.runtime import ServiceContext
from pension_shared.web import IsoDate, MinPosition, StrictModel, correlation_id, execute_command

Condition = Literal["retirement_age", "incapacity", "emigration", "medical_expenses", "unemployment", "subsistence_allowance"]


class ApplicationRequest(StrictModel):
    participant_id: Annotated[str, Field(min_length=1, max_length=40)]
    condition: Condition
    evidence: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=20)] = []


class DecisionRequest(StrictModel):
    decision: Literal["approved", "rejected", "materials_requested"]
    reason: Annotated[str, Field(max_length=500)] | None = None


class PayeeAccount(StrictModel):
    bank_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")]
    account_number: Annotated[str, Field(pattern=r"^[0-9]{8,32}$")]


class HeirRequest(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    id_number: Annotated[str, Field(min_length=1, max_length=32)]
    share: Annotated[str, Field(pattern=r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$")]
    payee_account: PayeeAccount


class DeathRequest(StrictModel):
    date_of_death: IsoDate
    heirs: Annotated[list[HeirRequest], Field(min_length=1, max_length=20)]


def withdrawals_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["withdrawal applications"])
    edge, store, clock = ctx.edge, ctx.store, ctx.clock
    pii = PersonalDataKey(ctx.settings.pii_key)

    def meta() -> Metadata:
        return Metadata(time=rfc3339(clock.now()), correlation_id=correlation_id.get())

    def participant_row(conn: sa.Connection, participant_id: str) -> sa.Row:
        row = conn.execute(sa.select(participants).where(participants.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise ParticipantNotFound(f"no participant {participant_id}")
        return row

    @router.post("/v1/withdrawal-applications", status_code=201)
    async def apply(body: ApplicationRequest, request: Request,
                    principal: Principal = edge.roles("bank", "operator")) -> JSONResponse:
        def work(conn: sa.Connection) -> tuple[int, dict]:
            row = participant_row(conn, body.participant_id)
            if principal.role == "bank" and not principal.is_bank(row.fund_account_bank_code or ""):
                raise NotHeardAtThisBank(f"no participant {body.participant_id}")
            application_id = apply_for_withdrawal(
                conn, store, participant_id=body.participant_id, condition=body.condition,
                evidence=body.evidence, channel=principal.institution, meta=meta(),
            )
            return 201, {"application_id": application_id, "participant_id": body.participant_id,
                         "condition": body.condition, "status": "under_verification",
                         "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    @router.post("/v1/withdrawal-applications/{application_id}/decision")
    async def decide(application_id: str, body: DecisionRequest, request: Request,
                     principal: Principal = edge.roles("agency")) -> JSONResponse:
        def work(conn: sa.Connection) -> tuple[int, dict]:
            status = decide_withdrawal(
                conn, store, application_id=application_id, decision=body.decision, reason=body.reason,
                agency_region=principal.code or "", meta=meta(),
            )
            return 200, {"application_id": application_id, "status": status, "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    @router.get("/v1/withdrawal-applications/{application_id}")
    def read(application_id: str, principal: Principal = edge.roles("bank", "operator", "agency"),
             min_position: MinPosition = None) -> dict:
        ctx.wait_for(min_position)
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(withdrawal_applications).where(
                withdrawal_applications.c.application_id == application_id)).one_or_none()
            holder = participant_row(conn, row.participant_id) if row is not None else None
        if row is None or holder is None or not _may_see(principal, holder):
            raise ApplicationNotFound(f"no withdrawal application {application_id}")
        return {
            "application_id": row.application_id, "participant_id": row.participant_id, "condition": row.condition,
            "status": row.status, "evidence": orjson.loads(row.evidence), "reason": row.reason,
            "applied_at": row.applied_at, "decided_at": row.decided_at, "decided_by": row.decided_by,
        }

    @router.post("/v1/participants/{participant_id}/death", status_code=201)
    async def death(participant_id: str, body: DeathRequest, request: Request,
                    principal: Principal = edge.roles("agency", "operator")) -> JSONResponse:
        def work(conn: sa.Connection) -> tuple[int, dict]:
            row = participant_row(conn, participant_id)
            if principal.role == "agency" and principal.code != row.insured_region:
                raise Forbidden("only the agency of the participant's insured region registers their death")
            register_death(
                conn, store, pii, participant_id=participant_id, date_of_death=body.date_of_death,
                heirs=[HeirInput(h.name, h.id_number, h.share, h.payee_account.bank_code, h.payee_account.account_number)
                       for h in body.heirs],
                meta=meta(),
            )
            return 201, {"participant_id": participant_id, "status": "deceased", "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    return router


def _may_see(principal: Principal, holder: sa.Row) -> bool:
    if principal.role == "operator":
        return True
    if principal.role == "agency":
        return principal.code == holder.insured_region
    return principal.is_bank(holder.fund_account_bank_code or "")
