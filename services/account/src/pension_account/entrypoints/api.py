"""HTTP API of the information platform (INTERFACES.md §2)."""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from pension_account.adapters.tables import (
    contribution_years, participant_records, participants, withdrawal_applications,
)
from pension_account.adapters.registry import HttpInsuranceRegistry, TableInsuranceRegistry
from pension_account.application.registration import RegisterParticipant, register_participant, valid_id_number
from pension_account.config import AccountSettings
from pension_account.domain.insurance import InsuranceRecord, InsuranceRegistry
from pension_account.domain.participant import ParticipantNotFound
from pension_account.domain.withdrawal import eligibility
from pension_shared.auth import Principal
from pension_shared.errors import DomainError, Forbidden
from pension_shared.clock import business_date, rfc3339
from pension_shared.money import format_fen
from pension_shared.policy import policy_on
from pension_shared.ledger import Metadata
from pension_shared.pii import PersonalDataKey, mask_id_number
from pension_shared.runtime import ServiceContext
from pension_shared.web import MinPosition, StrictModel, correlation_id, execute_command, run_in_thread


class SocialSecurityCardAccount(StrictModel):
    bank_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")]
    account_number: Annotated[str, Field(pattern=r"^[0-9]{8,32}$")]


class RegistrationRequest(StrictModel):
    id_number: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    insurance_type: Literal["employee", "resident"]
    insured_region: Annotated[str, Field(pattern=r"^[0-9]{6}$")]
    ss_card_account: SocialSecurityCardAccount
    channel: Literal["online", "bank", "agency"]


class InsuranceRegistryEntry(StrictModel):
    insurance_type: Literal["employee", "resident"] | None = None
    insured_region: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None
    status: Literal["insured", "not_insured", "receiving_basic_pension"]


def registries(ctx: ServiceContext) -> tuple[InsuranceRegistry, TableInsuranceRegistry | None]:
    """The registry registration consults, and the operator-loadable one outside production."""
    settings = AccountSettings()
    pii = PersonalDataKey(ctx.settings.pii_key)
    if settings.insurance_registry_url:
        return HttpInsuranceRegistry(settings.insurance_registry_url), None
    table = TableInsuranceRegistry(ctx.engine, pii, unknown_is_insured=settings.registry_unknown_is_insured)
    return table, (None if ctx.settings.production else table)


def participants_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/participants", tags=["participants"])
    edge, store, clock = ctx.edge, ctx.store, ctx.clock
    pii = PersonalDataKey(ctx.settings.pii_key)
    registry = ctx.extras.setdefault("insurance_registry", registries(ctx)[0])

    @router.post("", status_code=201)
    async def register(
        body: RegistrationRequest, request: Request, principal: Principal = edge.roles("bank", "operator"),
    ) -> JSONResponse:
        command = RegisterParticipant(
            id_number=body.id_number, name=body.name, insurance_type=body.insurance_type,
            insured_region=body.insured_region, ss_card_bank_code=body.ss_card_account.bank_code,
            ss_card_account_number=body.ss_card_account.account_number, channel=body.channel,
            registered_by=principal.institution,
        )

        insurance = await _insurance_of(registry, command, clock)

        def work(conn: sa.Connection) -> tuple[int, dict]:
            meta = Metadata(time=rfc3339(clock.now()), correlation_id=correlation_id.get())
            participant_id = register_participant(conn, store, pii, command, insurance, meta)
            return 201, {"participant_id": participant_id, "status": "active", "position": ctx.returned_position(conn)}

        return await execute_command(ctx.runner, request, principal, work)

    def _participant(conn: sa.Connection, participant_id: str, principal: Principal) -> sa.Row:
        row = conn.execute(sa.select(participants).where(participants.c.participant_id == participant_id)).one_or_none()
        if row is None or not _may_read(principal, row):
            raise ParticipantNotFound(f"no participant {participant_id}")
        return row

    @router.get("/{participant_id}")
    def read(participant_id: str, principal: Principal = edge.roles("bank", "operator"),
             min_position: MinPosition = None) -> dict:
        ctx.wait_for(min_position, participant_id)
        today = business_date(clock.now())
        with ctx.engine.connect() as conn:
            row = _participant(conn, participant_id, principal)
            year = conn.execute(sa.select(contribution_years).where(
                contribution_years.c.participant_id == participant_id, contribution_years.c.year == today.year,
            )).one_or_none()
            approved = conn.execute(
                sa.select(withdrawal_applications.c.condition)
                .where(withdrawal_applications.c.participant_id == participant_id,
                       withdrawal_applications.c.status == "approved")
                .order_by(withdrawal_applications.c.decided_at.desc())
            ).scalars().all() if row.status == "receiving" else []
        contributed = year.contributed if year else 0
        remaining = year.remaining_quota if year else policy_on(today).annual_contribution_cap
        return {
            "participant_id": row.participant_id,
            "id_number": row.id_number_masked,
            "status": row.status,
            "insurance_type": row.insurance_type,
            "insured_region": row.insured_region,
            "channel": row.channel,
            "ss_card_account": {"bank_code": row.ss_card_bank_code, "account_number": row.ss_card_account_masked},
            "fund_account": (
                {"bank_code": row.fund_account_bank_code, "fund_account_id": row.fund_account_id}
                if row.fund_account_id else None
            ),
            "year": today.year,
            "contributed_this_year": format_fen(contributed),
            "remaining_quota": format_fen(remaining),
            "eligibility": eligibility(row.status, approved),
            "registered_at": row.registered_at,
        }

    @router.get("/{participant_id}/records")
    def records(
        participant_id: str, year: Annotated[int | None, Query(ge=2000, le=2999)] = None,
        principal: Principal = edge.roles("bank", "operator"), min_position: MinPosition = None,
    ) -> dict:
        """The information query service (A-PACC-2): what the platform recorded of the year,
        each entry citing the event it came from."""
        ctx.wait_for(min_position, participant_id)
        year = year or business_date(clock.now()).year
        with ctx.engine.connect() as conn:
            _participant(conn, participant_id, principal)
            rows = conn.execute(
                sa.select(participant_records)
                .where(participant_records.c.participant_id == participant_id, participant_records.c.year == year)
                .order_by(participant_records.c.position)
            ).all()
        return {
            "participant_id": participant_id,
            "year": year,
            "items": [
                {
                    "kind": r.kind,
                    "time": r.time,
                    "amount": format_fen(r.amount) if r.amount is not None else None,
                    "fund_account_id": r.fund_account_id,
                    "product_code": r.product_code,
                    "source_event": {"id": r.source_event_id, "type": r.source_event_type},
                }
                for r in rows
            ],
            "next": None,
        }

    return router


async def _insurance_of(registry: InsuranceRegistry, command: RegisterParticipant, clock) -> InsuranceRecord | None:  # noqa: ANN001
    """Ask the registry first (outside the transaction); an invalid ID number is refused
    inside the command, where the refusal is remembered under the Idempotency-Key."""
    try:
        id_number = valid_id_number(command.id_number, Metadata(time=rfc3339(clock.now())))
    except DomainError:
        return None
    return await run_in_thread(registry.lookup, id_number.value)


def insurance_registry_router(ctx: ServiceContext) -> APIRouter:
    """``PUT /v1/ops/insurance-registry/{id_number}``: the embedded default's stand-in for the
    social insurance registry, loaded by operators; absent in production."""
    router = APIRouter(prefix="/v1/ops/insurance-registry", tags=["operations"])
    loadable = registries(ctx)[1]

    @router.put("/{id_number}")
    def load(id_number: str, body: InsuranceRegistryEntry, _: Principal = ctx.edge.roles("operator")) -> dict:
        if loadable is None:
            raise Forbidden("the insurance registry is the real one here; it cannot be loaded through this API")
        valid = valid_id_number(id_number, Metadata(time=rfc3339(ctx.clock.now())))
        loadable.load(valid.value, InsuranceRecord(body.status, body.insurance_type, body.insured_region))
        return {"id_number": mask_id_number(valid.value), **body.model_dump()}

    return router


def _may_read(principal: Principal, row: sa.Row) -> bool:
    """Operators see everyone; a bank sees the participant whose fund account it holds, or,
    before any fund account, the participant it registered."""
    if principal.role == "operator":
        return True
    if row.fund_account_bank_code is not None:
        return principal.is_bank(row.fund_account_bank_code)
    return principal.institution == row.registered_by
