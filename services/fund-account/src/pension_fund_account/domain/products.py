"""The eligible product list (A-INV-1, A-INV-2, A-INV-6): one stream per product code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

from pension_fund_account.domain.errors import InvalidRequest, ProductExists, ProductNotEligible
from pension_fund_account.domain.events import PRODUCT_LISTED, Event
from pension_shared.policy import Policy, product_type_eligible_from


@dataclass(frozen=True)
class Product:
    product_code: str
    name: str
    product_type: str
    eligible_from: date


@dataclass(frozen=True)
class ProductListing:
    """A product code on the list, or not yet."""

    product_code: str
    product: Product | None = None

    @classmethod
    def from_events(cls, product_code: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "ProductListing":
        listing = cls(product_code)
        for name, data in events:
            if name == PRODUCT_LISTED:
                listing = cls(product_code, Product(
                    data["product_code"], data["name"], data["product_type"], date.fromisoformat(data["eligible_from"]),
                ))
        return listing

    def list(self, *, name: str, product_type: str, eligible_from: date, listed_at: str) -> Event:
        if self.product is not None:
            raise ProductExists(f"product {self.product_code} is already listed")
        type_from = product_type_eligible_from(product_type)
        if type_from is None:
            raise InvalidRequest(f"{product_type!r} is not a product type of the personal pension")
        if eligible_from < type_from:
            raise ProductNotEligible(
                f"{product_type} products are eligible from {type_from.isoformat()}, not {eligible_from.isoformat()}",
            )
        return Event(PRODUCT_LISTED, {
            "product_code": self.product_code, "name": name, "product_type": product_type,
            "eligible_from": eligible_from.isoformat(), "listed_at": listed_at,
        })

    def eligible_product(self, policy: Policy) -> Product:
        """The product, if fund-account money may buy it on the policy's date."""
        product = self.product
        if product is None:
            raise ProductNotEligible(f"{self.product_code} is not on the eligible product list")
        if product.eligible_from > policy.on or not policy.product_type_eligible(product.product_type):
            raise ProductNotEligible(
                f"{product.product_code} ({product.product_type}) is not eligible on {policy.on.isoformat()}",
            )
        return product
