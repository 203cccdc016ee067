"""Service settings from the environment (``PENSION_*``), validated at start: a service with
missing or placeholder settings refuses to start rather than run half-configured."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_PII_KEY = "development-only-pii-key-never-in-production"
_PLACEHOLDERS = ("changeme", "change-me", "placeholder", "xxx", "todo")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PENSION_", extra="ignore", frozen=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str
    transport: Literal["kafka", "embedded"] = "kafka"
    kafka_bootstrap: str | None = None
    embedded_log_path: Path | None = None
    topic_partitions: int = 12
    topic_replication_factor: int = 1
    tokens_file: Path | None = None
    clock_file: Path | None = None
    consumer_group_prefix: str = "pension"
    topic_prefix: str = ""
    """Prepended to every topic name, e.g. ``staging.`` to share a Kafka cluster between
    deployments; empty in production, where the topics are exactly those of INTERFACES.md §6."""
    relay_batch_size: int = 500
    consumer_max_attempts: int = 3
    pii_key: str = DEVELOPMENT_PII_KEY
    """Keys the ID-number digests and seals identities for the services allowed to read them."""
    max_body_bytes: int = 64 * 1024
    """A larger request body is refused with 413 PAYLOAD_TOO_LARGE."""
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    """Each institution's token bucket: requests per second on average, and at once."""
    unheard_wait_s: float = Field(default=2.0, ge=0, le=10)
    """How long a command refused for what its service has not yet heard from another service (a
    participant registered a moment ago) is decided again before the refusal stands."""

    @model_validator(mode="after")
    def _fail_fast(self) -> "ServiceSettings":
        for name in ("database_url", "kafka_bootstrap"):
            value = getattr(self, name)
            if value and any(p in value.lower() for p in _PLACEHOLDERS):
                raise ValueError(f"PENSION_{name.upper()} still holds a placeholder value")
        if self.transport == "kafka" and not self.kafka_bootstrap:
            raise ValueError("PENSION_KAFKA_BOOTSTRAP is required with the kafka transport")
        if self.transport == "embedded" and self.embedded_log_path is None:
            raise ValueError("PENSION_EMBEDDED_LOG_PATH is required with the embedded transport")
        if self.env == "production":
            if self.pii_key == DEVELOPMENT_PII_KEY:
                raise ValueError("PENSION_PII_KEY must be set to a real secret in production")
            if self.transport != "kafka":
                raise ValueError("production runs on Kafka, not the embedded log")
            if not self.database_url.startswith("postgresql"):
                raise ValueError("production runs on PostgreSQL")
            if self.tokens_file is None:
                raise ValueError("PENSION_TOKENS_FILE is required in production")
            if not self.tokens_file.is_file():
                raise ValueError(f"PENSION_TOKENS_FILE {self.tokens_file} does not exist")
        if self.topic_partitions < 1:
            raise ValueError("PENSION_TOPIC_PARTITIONS must be at least 1")
        if self.max_body_bytes < 1024:
            raise ValueError("PENSION_MAX_BODY_BYTES must be at least 1024")
        if self.rate_limit_per_second <= 0 or self.rate_limit_burst < 1:
            raise ValueError("PENSION_RATE_LIMIT_PER_SECOND must be positive and PENSION_RATE_LIMIT_BURST at least 1")
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"
