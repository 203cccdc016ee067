"""The payout service's composition root."""

from pathlib import Path

from pension_payout.adapters.projection import PayeeRegisteredProjection
from pension_payout.application.policies import policies
from pension_payout.entrypoints.api import ops_router
from pension_shared.runtime import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="payout",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=lambda: [PayeeRegisteredProjection()],
    routers=lambda ctx: [ops_router(ctx)],
    policies=lambda ctx: policies(ctx.store),
    subscribes_to=("pension.account",),
)
