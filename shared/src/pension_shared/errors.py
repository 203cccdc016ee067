"""Domain errors with stable machine codes (INTERFACES.md §1).

Pure Python, so domain code may raise them; the HTTP edge maps each code to a status and
renders problem+json in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal by a business rule. ``code`` is the promised stable code; ``extra`` members
    are added to the problem document (for example ``remaining_quota``)."""

    code: str = "CONFLICT"
    rests_on_others: bool = False
    """Whether the refusal rests on what this service has heard of other services' events (a
    participant it has not heard registered, a status it has not heard change). Those events may
    still be on their way: a bank that registers a person and opens their fund account at once
    would otherwise be refused. A command so refused is decided again for a short while before
    the refusal stands (``pension_shared.idempotency.CommandRunner``)."""

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFound(DomainError):
    code = "NOT_FOUND"


class ConcurrencyConflict(DomainError):
    """Another writer appended to the stream first; the command may be retried."""

    code = "CONFLICT"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"


STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_FAILED": 422,
    "INVALID_ID_NUMBER": 422,
    "NOT_INSURED": 422,
    "PARTICIPANT_EXISTS": 409,
    "PARTICIPANT_NOT_FOUND": 404,
    "FUND_ACCOUNT_EXISTS": 409,
    "FUND_ACCOUNT_NOT_FOUND": 404,
    "ACCOUNT_FROZEN": 409,
    "CONTRIBUTION_CAP_EXCEEDED": 422,
    "INSUFFICIENT_FUNDS": 422,
    "PRODUCT_NOT_ELIGIBLE": 422,
    "BANK_CHANGE_NOT_ALLOWED": 409,
    "NOT_ELIGIBLE_FOR_WITHDRAWAL": 409,
    "WITHDRAWAL_METHOD_LOCKED": 409,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "CONFLICT": 409,
    "NOT_FOUND": 404,
    "CLOCK_NOT_SETTABLE": 403,
    "REGISTRY_UNAVAILABLE": 503,
    "WITHDRAWAL_CONDITION_NOT_IN_FORCE": 422,
    "CONTRIBUTIONS_ENDED": 409,
}


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 422)
