"""Adapters to the social insurance registry.

Production: an httpx client of the registry's HTTP API. Embedded default: a table the operator
loads through ``PUT /v1/ops/insurance-registry/{id_number}``, keyed by the keyed digest of the
ID number so the number itself is not stored."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pension_account.adapters.tables import insurance_registry
from pension_account.domain.insurance import InsuranceRecord
from pension_shared.errors import DomainError
from pension_shared.pii import PersonalDataKey


class RegistryUnavailable(DomainError):
    code = "REGISTRY_UNAVAILABLE"


class HttpInsuranceRegistry:
    """``GET {base_url}/insured-persons/{id_number}`` → ``{"status", "insurance_type", "insured_region"}``;
    404 means the registry knows no such insured person."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def lookup(self, id_number: str) -> InsuranceRecord | None:
        try:
            response = self._client.get(f"/insured-persons/{id_number}")
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"the social insurance registry did not answer ({type(exc).__name__})") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryUnavailable(f"the social insurance registry answered {response.status_code}")
        body = response.json()
        return InsuranceRecord(body["status"], body.get("insurance_type"), body.get("insured_region"))


class TableInsuranceRegistry:
    """The embedded default's stand-in. A person the operator has not loaded is taken as
    insured as declared, unless ``unknown_is_insured`` is off."""

    def __init__(self, engine: Engine, pii: PersonalDataKey, *, unknown_is_insured: bool = True) -> None:
        self._engine = engine
        self._pii = pii
        self._unknown_is_insured = unknown_is_insured

    def lookup(self, id_number: str) -> InsuranceRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(insurance_registry).where(insurance_registry.c.id_number_digest == self._pii.digest(id_number))
            ).one_or_none()
        if row is None:
            return InsuranceRecord("insured") if self._unknown_is_insured else None
        return InsuranceRecord(row.status, row.insurance_type, row.insured_region)

    def load(self, id_number: str, record: InsuranceRecord) -> None:
        digest = self._pii.digest(id_number)
        values = {"status": record.status, "insurance_type": record.insurance_type, "insured_region": record.insured_region}
        with self._engine.begin() as conn:
            updated = conn.execute(
                insurance_registry.update().where(insurance_registry.c.id_number_digest == digest).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(insurance_registry.insert().values(id_number_digest=digest, **values))
