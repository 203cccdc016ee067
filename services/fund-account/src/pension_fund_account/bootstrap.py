"""The fund-account service's composition root."""

from pathlib import Path

from pension_fund_account.adapters.projection import projections
from pension_fund_account.application.policies import policies
from pension_shared.runtime import ServiceContext, ServiceDefinition


def _routers(ctx: ServiceContext) -> list:
    # Imported here: only the API process serves HTTP (the other roles start without FastAPI).
    from pension_fund_account.entrypoints.api import fund_accounts_router, ops_router, products_router

    return [fund_accounts_router(ctx), products_router(ctx), ops_router(ctx)]


DEFINITION = ServiceDefinition(
    name="fund-account",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=projections,
    routers=_routers,
    policies=lambda ctx: policies(ctx.store),
    subscribes_to=("pension.account", "pension.payout"),
)
