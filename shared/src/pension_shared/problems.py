"""Problem documents (RFC 9457) and the correlation id, without the web framework.

A refusal is rendered the same way wherever it is decided (a command under an Idempotency-Key
stores its problem document with its outcome), and logs and events carry the correlation id of
the request or event being handled. Relays, consumers and jobs need both but serve no HTTP, so
they start without importing FastAPI; ``pension_shared.web`` builds the HTTP edge on top."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from pension_shared.errors import DomainError, status_for
from pension_shared.idempotency import StoredResponse
from pension_shared.pii import mask_id_number

PROBLEM_JSON = "application/problem+json"
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://pension.example.cn/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": _masked(detail),
        **extra,
    }


_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")


def _masked(detail: str) -> str:
    """A detail that echoes what the client sent (``no participant <id>``) never carries an ID
    number in clear, even one sent where it does not belong: error bodies end up in logs."""
    return _ID_NUMBER.sub(lambda found: mask_id_number(found.group()), detail)


def render_domain_error(error: DomainError) -> StoredResponse:
    status = status_for(error.code)
    title = error.code.replace("_", " ").capitalize()
    return StoredResponse(status, problem(status, error.code, title, error.detail, **error.extra))
