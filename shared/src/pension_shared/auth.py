"""Bearer-token authentication with the four roles of INTERFACES.md §1.

Tokens are kept only as SHA-256 digests; a presented token is hashed and compared in constant
time. The development tokens (``dev-operator``, ``dev-tax-bureau``, ``dev-bank-<CODE>``,
``dev-agency-<REGION>``) are recognised only outside production, and a production tokens file
that holds the digest of one is refused at start.

Operators revoke a token by adding its digest to the file's ``"revoked"`` list (and add tokens
likewise): the file is read again when it changes, without a restart."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import re
import string
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson

from pension_shared.errors import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

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
        self._state: tuple[dict[str, Principal], frozenset[str]] = (dict(principals_by_digest), frozenset())
        """The known digests, and the revoked ones (the file's and those given to ``revoke``),
        swapped together so a request never sees half a reload."""
        self._revoked_here: frozenset[str] = frozenset()
        self._development = development
        self._path: Path | None = None
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path | None, *, development: bool) -> "TokenRegistry":
        """``path`` holds ``{"tokens": [{"sha256": ..., "role": ..., "code": ...}, ...],
        "revoked": [sha256, ...]}``. In production (``development=False``) a file holding a
        development token's digest is refused."""
        registry = cls({}, development=development)
        if path is not None:
            registry._path = path
            registry._seen = _stamp(path)
            registry._state = _read(path, development=development)
        return registry

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:  # the scheme in any case (RFC 9110 §11.1)
            raise Unauthenticated("a bearer token is required")
        self._reload_if_changed()
        by_digest, revoked = self._state
        presented = digest(token)
        if any(hmac.compare_digest(presented, r) for r in revoked):
            raise Unauthenticated("the token has been revoked")
        for known, principal in by_digest.items():
            if hmac.compare_digest(presented, known):
                return principal
        if self._development:
            principal = _development_principal(token)
            if principal is not None:
                return principal
        raise Unauthenticated("the token is not valid")

    def still_accepts(self, token_digest: str) -> bool:
        """Whether a token accepted before, known here by its digest (a session opened with it),
        is still accepted: not revoked, and still in the tokens file. Outside production a
        development token stays accepted until revoked."""
        self._reload_if_changed()
        by_digest, revoked = self._state
        if any(hmac.compare_digest(token_digest, r) for r in revoked):
            return False
        return any(hmac.compare_digest(token_digest, known) for known in by_digest) or self._development

    def revoke(self, token_digest: str) -> None:
        with self._lock:
            self._revoked_here = self._revoked_here | {token_digest.lower()}
            by_digest, revoked = self._state
            self._state = (by_digest, revoked | self._revoked_here)

    def _reload_if_changed(self) -> None:
        """A file that cannot be read or is refused leaves the tokens as they were."""
        if self._path is None:
            return
        stamp = _stamp(self._path)
        if stamp == self._seen:
            return
        with self._lock:
            if stamp == self._seen:
                return
            try:
                by_digest, revoked = _read(self._path, development=self._development)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("the tokens file %s was not reloaded: %s", self._path, exc)
                return
            finally:
                self._seen = stamp
            self._state = (by_digest, revoked | self._revoked_here)
            log.info("tokens file %s reloaded: %d tokens, %d revoked", self._path, len(by_digest), len(revoked))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read(path: Path, *, development: bool) -> tuple[dict[str, Principal], frozenset[str]]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    entries: dict[str, Principal] = {}
    for item in document.get("tokens", []):
        if item["role"] not in ROLES:
            raise ValueError(f"unknown role {item['role']!r} in {path}")
        entries[item["sha256"].lower()] = Principal(item["role"], item.get("code"))
    if not development:
        refuse_development_tokens(entries, path)
    return entries, frozenset(d.lower() for d in document.get("revoked", []))


COMMON_BANK_CODES = (
    "ICBC", "ABC", "BOC", "CCB", "BOCOM", "BCM", "COMM", "PSBC", "CMB", "CITIC", "CNCB", "CEB", "HXB", "HXBANK",
    "CMBC", "SPDB", "CIB", "CGB", "GDB", "PAB", "SPABANK", "PINGAN", "BOB", "BJBANK", "BOSH", "SHBANK", "NBCB",
    "NJCB", "HZB", "HZCB", "CZB", "CBHB", "EGB", "HFB", "SRCB", "BJRCB", "CQRCB", "WEBANK", "MYBANK", "ZZBANK",
    "BANK", "TEST", "TESTBANK", "BANKA", "BANKB", "DEMO",
)
"""Bank codes whose development token is looked for by name, beyond every 2- and 3-character
code and every code of four letters."""
PROVINCE_PREFIXES = (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
    "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
)


@cache
def development_token_digests() -> frozenset[str]:
    """The digests of the development tokens a production file must not hold: the fixed ones,
    an agency of every region code, and a bank of every short or common code. A bank code that
    is long and unusual is beyond this check (tokens are kept as digests, so it can only guess)."""
    alphanumeric = string.ascii_uppercase + string.digits
    banks = itertools.chain(
        COMMON_BANK_CODES,
        ("".join(c) for n in (2, 3) for c in itertools.product(alphanumeric, repeat=n)),
        ("".join(c) for c in itertools.product(string.ascii_uppercase, repeat=4)),
    )
    regions = (f"{province}{rest:04d}" for province in PROVINCE_PREFIXES for rest in range(10_000))
    tokens = itertools.chain(
        ("dev-operator", "dev-tax-bureau"),
        (f"dev-bank-{code}" for code in banks),
        (f"dev-agency-{region}" for region in regions),
    )
    return frozenset(hashlib.sha256(t.encode()).hexdigest() for t in tokens)


def refuse_development_tokens(principals_by_digest: dict[str, Principal], path: Path | None = None) -> None:
    found = [p.institution for d, p in principals_by_digest.items() if d in development_token_digests()]
    if found:
        where = f" in {path}" if path else ""
        raise ValueError(f"development tokens{where} are refused in production (for {', '.join(sorted(found))})")


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
