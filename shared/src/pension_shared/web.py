"""The HTTP edge shared by every service: problem+json errors with stable codes, the
authenticated principal, idempotent command execution, correlation ids, health and the
business-clock endpoints."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pension_shared.auth import Principal, TokenRegistry, require_role
from pension_shared.clock import BusinessClock, rfc3339
from pension_shared.errors import DomainError, status_for
from pension_shared.idempotency import CommandRunner, RefusedResponse, StoredResponse, Work, fingerprint

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://pension.example.cn/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }


def render_domain_error(error: DomainError) -> StoredResponse:
    status = status_for(error.code)
    title = error.code.replace("_", " ").capitalize()
    return StoredResponse(status, problem(status, error.code, title, error.detail, **error.extra))


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        stored = render_domain_error(exc)
        headers = {"WWW-Authenticate": "Bearer"} if stored.status_code == 401 else None
        return problem_response(stored.status_code, stored.body, headers)

    @app.exception_handler(RefusedResponse)
    async def _refused(_: Request, exc: RefusedResponse) -> JSONResponse:
        return problem_response(exc.response.status_code, exc.response.body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": [str(part) for part in e.get("loc", ())], "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        status = 400 if malformed else 422
        detail = "the request body is not valid JSON" if malformed else "the request does not match the schema"
        return problem_response(status, problem(status, "VALIDATION_FAILED", "Validation failed", detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(exc.status_code, "VALIDATION_FAILED")
        if exc.status_code == 405:
            code = "METHOD_NOT_ALLOWED"
        return problem_response(exc.status_code, problem(exc.status_code, code, str(exc.detail), str(exc.detail)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, problem(500, "INTERNAL_ERROR", "Internal error", "the request could not be completed"))


def install_correlation(app: FastAPI) -> None:
    @app.middleware("http")
    async def _correlate(request: Request, call_next: Callable) -> Response:
        value = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
        token = correlation_id.set(value)
        try:
            response = await call_next(request)
        finally:
            correlation_id.reset(token)
        response.headers["X-Correlation-Id"] = value
        return response


class Edge:
    """What routes need from the composition root: authentication, the clock and commands."""

    def __init__(self, tokens: TokenRegistry, clock: BusinessClock) -> None:
        self.tokens = tokens
        self.clock = clock

    def principal(self) -> Callable[[Request], Principal]:
        def dependency(request: Request) -> Principal:
            return self.tokens.authenticate(request.headers.get("Authorization"))

        return dependency

    def roles(self, *roles: str) -> Any:
        authenticate = self.principal()

        def dependency(principal: Principal = Depends(authenticate)) -> Principal:
            return require_role(principal, *roles)  # type: ignore[arg-type]

        return Depends(dependency)


async def execute_command(runner: CommandRunner, request: Request, principal: Principal, work: Work) -> JSONResponse:
    """Run ``work`` in one transaction under the request's Idempotency-Key (if any)."""
    body = await request.body()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255):
        raise DomainError("Idempotency-Key must be 1 to 255 characters", code="VALIDATION_FAILED")
    stored = await run_in_thread(
        runner.run, work, institution=principal.institution, key=key,
        fingerprint=fingerprint(request.method, request.url.path, body),
    )
    return JSONResponse(stored.body, status_code=stored.status_code)


async def run_in_thread(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Blocking work (database, other systems) off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


class ClockBody(StrictModel):
    now: datetime


def clock_router(edge: Edge, clock: Any, *, settable: bool) -> APIRouter:
    router = APIRouter(prefix="/v1/ops", tags=["operations"])

    @router.get("/clock")
    def read_clock(_: Principal = edge.roles("operator", "bank", "agency", "tax-bureau")) -> dict[str, str]:
        return {"now": rfc3339(clock.now())}

    @router.put("/clock")
    def set_clock(body: ClockBody, _: Principal = edge.roles("operator")) -> dict[str, str]:
        if not settable or not hasattr(clock, "set"):
            raise DomainError("the business clock is the wall clock in production", code="CLOCK_NOT_SETTABLE")
        if body.now.tzinfo is None:
            raise DomainError("now must carry a UTC offset (RFC 3339)", code="VALIDATION_FAILED")
        return {"now": rfc3339(clock.set(body.now))}

    return router
