"""The tax service's composition root."""

from pathlib import Path

from pension_tax.adapters.projection import TaxpayerRegisteredProjection
from pension_tax.application.policies import policies
from pension_tax.entrypoints.api import ops_router
from pension_shared.pii import PersonalDataKey
from pension_shared.runtime import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="tax",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=lambda: [TaxpayerRegisteredProjection()],
    routers=lambda ctx: [ops_router(ctx)],
    policies=lambda ctx: policies(ctx.store, PersonalDataKey(ctx.settings.pii_key)),
    subscribes_to=("pension.account",),
)
