"""HTTP API of the tax service."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from pension_tax.adapters.tables import taxpayers
from pension_shared.auth import Principal
from pension_shared.errors import NotFound
from pension_shared.pii import mask_id_number
from pension_shared.runtime import ServiceContext


def ops_router(ctx: ServiceContext) -> APIRouter:
    """What this service knows of a participant, for operators."""
    router = APIRouter(prefix="/v1/ops/tax", tags=["operations"])

    @router.get("/participants/{participant_id}")
    def participant(participant_id: str, _: Principal = ctx.edge.roles("operator", "tax-bureau")) -> dict:
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(taxpayers).where(taxpayers.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise NotFound(f"the tax service knows no participant {participant_id}")
        return {"participant_id": row.participant_id, "id_number": mask_id_number(row.id_number),
                "registered_at": row.registered_at}

    return router
