"""The fund-account service's composition root."""

from pathlib import Path

from pension_fund_account.adapters.projection import ParticipantRecognisedProjection
from pension_fund_account.application.policies import policies
from pension_fund_account.entrypoints.api import ops_router
from pension_shared.runtime import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="fund-account",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=lambda: [ParticipantRecognisedProjection()],
    routers=lambda ctx: [ops_router(ctx)],
    policies=lambda ctx: policies(ctx.store),
    subscribes_to=("pension.account",),
)
