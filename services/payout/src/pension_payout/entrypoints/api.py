"""HTTP API of the payout service."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from pension_payout.adapters.tables import payees
from pension_shared.auth import Principal
from pension_shared.errors import NotFound
from pension_shared.runtime import ServiceContext


def ops_router(ctx: ServiceContext) -> APIRouter:
    """What this service knows of a participant, for operators."""
    router = APIRouter(prefix="/v1/ops/payout", tags=["operations"])

    @router.get("/participants/{participant_id}")
    def participant(participant_id: str, _: Principal = ctx.edge.roles("operator")) -> dict:
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(payees).where(payees.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise NotFound(f"the payout service knows no participant {participant_id}")
        return {"participant_id": row.participant_id, "ss_card_account": {
                    "bank_code": row.bank_code, "account_number": row.account_number_masked}}

    return router
