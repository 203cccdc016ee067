"""HTTP API of the fund-account service."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from pension_fund_account.adapters.tables import known_participants
from pension_shared.auth import Principal
from pension_shared.errors import NotFound
from pension_shared.runtime import ServiceContext


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
