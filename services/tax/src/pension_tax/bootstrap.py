"""The tax service's composition root."""

from pathlib import Path

from pension_shared.pii import PersonalDataKey
from pension_shared.runtime import ServiceContext, ServiceDefinition
from pension_tax.adapters.projection import projections
from pension_tax.application.policies import SUBSCRIBES_TO, policies
from pension_tax.application.statements import TaxYearClosing
from pension_tax.domain.taxpayer import TaxRules
from pension_tax.domain.vouchers import VoucherSigner


def tax_rules(ctx: ServiceContext) -> TaxRules:
    return TaxRules(VoucherSigner.from_secret(ctx.settings.pii_key))


def _routers(ctx: ServiceContext) -> list:
    # Imported here: only the API process serves HTTP (the other roles start without FastAPI).
    from pension_tax.entrypoints.api import ops_router, tax_router

    return [tax_router(ctx), ops_router(ctx)]


DEFINITION = ServiceDefinition(
    name="tax",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=projections,
    routers=_routers,
    policies=lambda ctx: policies(ctx.store, PersonalDataKey(ctx.settings.pii_key), tax_rules(ctx)),
    subscribes_to=SUBSCRIBES_TO,
    jobs=lambda ctx: [TaxYearClosing(ctx.engine, ctx.store, ctx.clock, tax_rules(ctx))],
)
