"""Payout-service settings beyond the shared ones."""

from __future__ import annotations

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PayoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PENSION_", extra="ignore", frozen=True)

    env: str = "development"
    payment_endpoint_url: str | None = None
    """The bank-payment endpoint; required in production."""

    @model_validator(mode="after")
    def _fail_fast(self) -> "PayoutSettings":
        if self.env == "production" and not self.payment_endpoint_url:
            raise ValueError("PENSION_PAYMENT_ENDPOINT_URL is required in production")
        return self
