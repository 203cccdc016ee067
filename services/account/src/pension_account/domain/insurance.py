"""Basic pension insurance, the gate to the personal pension (A-ELIG-1, B-1).

The social insurance registry is an external system; the domain only sees what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pension_shared.errors import DomainError

InsuranceStatus = Literal["insured", "not_insured", "receiving_basic_pension"]


class NotInsured(DomainError):
    code = "NOT_INSURED"


@dataclass(frozen=True)
class InsuranceRecord:
    status: InsuranceStatus
    insurance_type: str | None = None
    insured_region: str | None = None


class InsuranceRegistry(Protocol):
    def lookup(self, id_number: str) -> InsuranceRecord | None:
        """The registry's record of this person, or None when it has none."""


def require_insured(record: InsuranceRecord) -> InsuranceRecord:
    """Only workers insured in basic pension insurance join (A-ELIG-1); retirees already drawing
    a basic pension do not (B-1)."""
    if record.status == "not_insured":
        raise NotInsured("the person is not insured in basic pension insurance")
    if record.status == "receiving_basic_pension":
        raise NotInsured("the person already receives a basic pension and does not join (B-1)")
    return record
