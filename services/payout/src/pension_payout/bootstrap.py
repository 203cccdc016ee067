"""The payout service's composition root."""

from pathlib import Path

from pension_payout.adapters.payments import HttpPaymentAdapter, PaymentAdapter, RecordingPaymentAdapter
from pension_payout.adapters.projection import PayeeRegisteredProjection, WithdrawalsProjection
from pension_payout.application.jobs import DuePayouts, Payments
from pension_payout.application.policies import policies
from pension_payout.config import PayoutSettings
from pension_shared.runtime import ServiceContext, ServiceDefinition


def payment_adapter(ctx: ServiceContext) -> PaymentAdapter:
    """One adapter per service context, shared by the jobs and the operator views."""
    if "payments" not in ctx.extras:
        url = PayoutSettings().payment_endpoint_url
        ctx.extras["payments"] = HttpPaymentAdapter(url) if url else RecordingPaymentAdapter(ctx.engine)
    return ctx.extras["payments"]  # type: ignore[return-value]


def _recording(ctx: ServiceContext) -> RecordingPaymentAdapter | None:
    adapter = payment_adapter(ctx)
    return adapter if isinstance(adapter, RecordingPaymentAdapter) else None


def _routers(ctx: ServiceContext) -> list:
    # Imported here: only the API process serves HTTP (the other roles start without FastAPI).
    from pension_payout.entrypoints.api import ops_router, withdrawals_router

    return [withdrawals_router(ctx), ops_router(ctx, _recording(ctx))]


DEFINITION = ServiceDefinition(
    name="payout",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    projections=lambda: [PayeeRegisteredProjection(), WithdrawalsProjection()],
    routers=_routers,
    policies=lambda ctx: policies(ctx.store),
    subscribes_to=("pension.account", "pension.fund-account"),
    jobs=lambda ctx: [DuePayouts(ctx), Payments(ctx, payment_adapter(ctx))],
)
