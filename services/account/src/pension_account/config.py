"""Account-service settings beyond the shared ones."""

from __future__ import annotations

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PENSION_", extra="ignore", frozen=True)

    env: str = "development"
    insurance_registry_url: str | None = None
    """The social insurance registry's HTTP API; required in production."""
    registry_unknown_is_insured: bool = True
    """Embedded default only: a person the operator did not load is taken as insured as declared."""

    @model_validator(mode="after")
    def _fail_fast(self) -> "AccountSettings":
        if self.env == "production" and not self.insurance_registry_url:
            raise ValueError("PENSION_INSURANCE_REGISTRY_URL is required in production")
        return self
