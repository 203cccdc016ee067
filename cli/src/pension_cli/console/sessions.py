"""Operator sessions of the console.

A browser's EventSource cannot send an Authorization header, so the page exchanges the operator's
bearer token once (``POST /console/session``) for a short-lived session cookie: HttpOnly (no script
reads it), SameSite=Strict (no other site's page sends it), scoped to ``/console``, and signed with
HMAC-SHA256 so it cannot be forged or stretched. It carries the principal and its expiry, nothing
else but the token's SHA-256 digest (the form the tokens file keeps), so that a token revoked or
removed from the file after the exchange ends its sessions at once; the token itself never
leaves the exchange."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import Callable

import orjson

from pension_shared.auth import ROLES, Principal
from pension_shared.errors import Unauthenticated

COOKIE = "pension_console"
SESSION_TTL_S = 15 * 60


class Sessions:
    def __init__(self, secret: bytes | None = None, *, ttl_s: int = SESSION_TTL_S,
                 wall: Callable[[], float] = time.time) -> None:
        configured = os.environ.get("PENSION_CONSOLE_SECRET")
        self._secret = secret or (configured.encode() if configured else secrets.token_bytes(32))
        """Random per process unless PENSION_CONSOLE_SECRET is set (several console replicas
        behind one address must share it); a restart with a random secret ends every session."""
        self.ttl_s = ttl_s
        self._wall = wall

    def issue(self, principal: Principal, token_digest: str) -> str:
        claims = {"role": principal.role, "code": principal.code, "tok": token_digest,
                  "exp": int(self._wall()) + self.ttl_s}
        body = _b64(orjson.dumps(claims))
        return f"{body}.{self._sign(body)}"

    def principal(self, cookie: str) -> tuple[Principal, str]:
        """The session's principal and the digest of the token that opened it."""
        body, _, signature = cookie.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise Unauthenticated("the console session is not valid; sign in again")
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise Unauthenticated("the console session is not valid; sign in again") from exc
        if claims.get("exp", 0) <= self._wall():
            raise Unauthenticated("the console session has expired; sign in again")
        if claims.get("role") not in ROLES or not isinstance(claims.get("tok"), str):
            raise Unauthenticated("the console session is not valid; sign in again")
        return Principal(claims["role"], claims.get("code")), claims["tok"]

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
