"""The account service's composition root."""

from pathlib import Path

from pension_account.adapters.projection import ParticipantsProjection
from pension_account.adapters.withdrawal_projection import WithdrawalsProjection
from pension_account.application.policies import policies
from pension_shared.runtime import ServiceContext, ServiceDefinition


def _routers(ctx: ServiceContext) -> list:
    # Imported here: only the API process serves HTTP (the other roles start without FastAPI).
    from pension_account.entrypoints.api import insurance_registry_router, participants_router
    from pension_account.entrypoints.withdrawals_api import withdrawals_router

    return [participants_router(ctx), insurance_registry_router(ctx), withdrawals_router(ctx)]


DEFINITION = ServiceDefinition(
    name="account",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=lambda: [ParticipantsProjection(), WithdrawalsProjection()],
    routers=_routers,
    policies=lambda ctx: policies(ctx.store),
    subscribes_to=("pension.fund-account", "pension.payout", "pension.tax"),
)
