"""The embedded default's starting product list (INTERFACES.md §3): a few products of each type,
listed as ordinary ProductListed events, once. Safe to call at every start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pension_fund_account.application.commands import ListProduct
from pension_fund_account.application.handlers import list_product
from pension_fund_account.domain.events import product_stream
from pension_shared.policy import product_type_eligible_from
from pension_shared.clock import rfc3339
from pension_shared.errors import ConcurrencyConflict
from pension_shared.ledger import Metadata

if TYPE_CHECKING:
    from pension_shared.runtime import ServiceContext

DEFAULT_PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("SD0001", "Personal pension three-year time deposit", "savings_deposit"),
    ("SD0002", "Personal pension five-year time deposit", "savings_deposit"),
    ("WM0001", "Pension wealth management plan, stable income", "wealth_management"),
    ("WM0002", "Pension wealth management plan, balanced", "wealth_management"),
    ("PI0001", "Commercial pension insurance, participating", "pension_insurance"),
    ("PI0002", "Commercial pension insurance, universal life", "pension_insurance"),
    ("PF0001", "Target-date 2045 pension fund, Y share", "public_fund"),
    ("PF0002", "Target-risk balanced pension fund, Y share", "public_fund"),
    ("TB0001", "Savings treasury bond (electronic), three years", "treasury_bond"),
    ("TB0002", "Savings treasury bond (electronic), five years", "treasury_bond"),
    ("PS0001", "Specific pension savings, five years", "pension_savings"),
    ("PS0002", "Specific pension savings, ten years", "pension_savings"),
    ("IF0001", "CSI 300 index fund, Y share", "index_fund"),
    ("IF0002", "CSI A500 index fund, Y share", "index_fund"),
)


def seed_default_products(ctx: "ServiceContext", *, attempts: int = 3) -> int:
    """List every default product not listed yet, each from its type's policy date; returns how many.
    Two processes starting together may race: the loser retries and finds the products listed."""
    for attempt in range(1, attempts + 1):
        try:
            return _seed(ctx)
        except ConcurrencyConflict:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _seed(ctx: "ServiceContext") -> int:
    listed = 0
    with ctx.engine.begin() as conn:
        meta = Metadata(time=rfc3339(ctx.clock.now()))
        for code, name, product_type in DEFAULT_PRODUCTS:
            if ctx.store.load(conn, product_stream(code)).version:
                continue
            eligible_from = product_type_eligible_from(product_type)
            assert eligible_from is not None
            list_product(conn, ctx.store, ListProduct(code, name, product_type, eligible_from), meta)
            listed += 1
    return listed
