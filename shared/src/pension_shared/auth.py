"""Bearer-token authentication with the four roles of INTERFACES.md §1.

Tokens are kept only as SHA-256 digests; a presented token is hashed and compared in constant
time. The development tokens (``dev-operator``, ``dev-tax-bureau``, ``dev-bank-<CODE>``,
``dev-agency-<REGION>``) are recognised only outside production."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from pension_shared.errors import Forbidden, Unauthenticated

Role = Literal["bank", "agency", "tax-bureau", "operator"]
ROLES: tuple[Role, ...] = ("bank", "agency", "tax-bureau", "operator")

_BANK = re.compile(r"^dev-bank-([A-Z0-9]{2,16})$")
_AGENCY = re.compile(r"^dev-agency-([0-9]{6})$")

DEVELOPMENT_TOKENS_HELP = (
    "dev-operator", "dev-tax-bureau", "dev-bank-<BANK_CODE> (e.g. dev-bank-ICBC)",
    "dev-agency-<REGION_CODE> (e.g. dev-agency-410100)",
)


@dataclass(frozen=True)
class Principal:
    role: Role
    code: str | None = None
    """The bank code for a bank, the region code for an agency; None otherwise."""

    @property
    def institution(self) -> str:
        return f"{self.role}:{self.code}" if self.code else self.role

    def is_bank(self, bank_code: str) -> bool:
        return self.role == "bank" and self.code == bank_code


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRegistry:
    def __init__(self, principals_by_digest: dict[str, Principal], *, development: bool) -> None:
        self._by_digest = dict(principals_by_digest)
        self._revoked: set[str] = set()
        self._development = development

    @classmethod
    def from_file(cls, path: Path | None, *, development: bool) -> "TokenRegistry":
        """``path`` holds ``{"tokens": [{"sha256": ..., "role": ..., "code": ...}, ...]}``."""
        entries: dict[str, Principal] = {}
        if path is not None:
            document = orjson.loads(path.read_bytes())
            for item in document.get("tokens", []):
                if item["role"] not in ROLES:
                    raise ValueError(f"unknown role {item['role']!r} in {path}")
                entries[item["sha256"].lower()] = Principal(item["role"], item.get("code"))
            revoked = {d.lower() for d in document.get("revoked", [])}
            registry = cls(entries, development=development)
            registry._revoked = revoked
            return registry
        return cls(entries, development=development)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("a bearer token is required")
        token = authorization[len("Bearer "):].strip()
        presented = digest(token)
        if any(hmac.compare_digest(presented, revoked) for revoked in self._revoked):
            raise Unauthenticated("the token has been revoked")
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(presented, known):
                return principal
        if self._development:
            principal = _development_principal(token)
            if principal is not None:
                return principal
        raise Unauthenticated("the token is not valid")

    def revoke(self, token_digest: str) -> None:
        self._revoked.add(token_digest.lower())


def _development_principal(token: str) -> Principal | None:
    if token == "dev-operator":
        return Principal("operator")
    if token == "dev-tax-bureau":
        return Principal("tax-bureau")
    if match := _BANK.match(token):
        return Principal("bank", match.group(1))
    if match := _AGENCY.match(token):
        return Principal("agency", match.group(1))
    return None


def require_role(principal: Principal, *roles: Role) -> Principal:
    if principal.role not in roles:
        raise Forbidden(f"this call is not open to the {principal.role} role")
    return principal
