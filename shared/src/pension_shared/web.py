"""The HTTP edge shared by every service: problem+json errors with stable codes, the
authenticated principal, idempotent command execution, correlation ids, health and the
business-clock endpoints, and the limits every request meets before a route sees it (body
size, media type, a rate per institution)."""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
import uuid
from datetime import date, datetime
from email.message import Message
from typing import Annotated, Any, Awaitable, Callable, Iterator

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message as ASGIMessage, Receive, Scope, Send

from pension_shared.auth import Principal, TokenRegistry, require_role
from pension_shared.clock import EARLIEST, LATEST, BusinessClock, rfc3339, within_business_years
from pension_shared.errors import DomainError
from pension_shared.idempotency import CommandRunner, RefusedResponse, Work, fingerprint
from pension_shared.problems import PROBLEM_JSON, correlation_id, problem, render_domain_error
from pension_shared.settings import ServiceSettings

log = logging.getLogger(__name__)


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused, not silently dropped, and each member has the
    JSON type the OpenAPI document gives it: ``"3"`` is not an integer nor ``true`` a count, and
    ``"true"`` is not a boolean (pydantic's lax mode would take them). Dates and times are JSON
    strings, read as such (``IsoDate``, ``ClockBody.now``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


def _json_string(value: Any) -> Any:
    """Refuses what is not a JSON string before a date or a time is parsed from it: a bare number
    would be taken for seconds since 1970."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


IsoDate = Annotated[date, BeforeValidator(_json_string), Field(strict=False)]
"""A calendar date, ``"2025-10-09"``, in a request body."""

Yuan = Annotated[str, StringConstraints(strip_whitespace=False), Field(
    description='yuan with exactly two decimals, e.g. "1200.00" (INTERFACES.md §1)', examples=["1200.00"])]
"""Money in a request body, read by ``pension_shared.money.parse_yuan``: not stripped of spaces,
which are no part of an amount."""


def database_unavailable(exc: sa_exc.DBAPIError) -> bool:
    """The database could not be reached or dropped the connection (a restart, a failover), as
    opposed to a query it refused."""
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or exc.connection_invalidated


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _retry_later() -> JSONResponse:
    return problem_response(503, problem(503, "SERVICE_UNAVAILABLE", "Service unavailable",
                                         "the database is unavailable or busy; send the request again with the same Idempotency-Key"),
                            {"Retry-After": "1"})


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
        code = _CODE_BY_STATUS.get(exc.status_code, "VALIDATION_FAILED")
        body = problem(exc.status_code, code, str(exc.detail), str(exc.detail))
        return problem_response(exc.status_code, body, exc.headers)

    @app.exception_handler(sa_exc.DBAPIError)
    async def _database(_: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        if not database_unavailable(exc):
            return await _unexpected(_, exc)
        # The database is restarting or unreachable: nothing was done (or the transaction did not
        # commit), and the same request with the same Idempotency-Key may be sent again.
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)
        return _retry_later()

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_exhausted(_: Request, exc: sa_exc.TimeoutError) -> JSONResponse:
        # Every connection of the pool stayed in use for the pool's timeout: nothing was done.
        log.warning("database busy: no connection free (%s)", exc)
        return _retry_later()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, problem(500, "INTERNAL_ERROR", "Internal error", "the request could not be completed"))


def install_correlation(app: FastAPI) -> None:
    app.add_middleware(Correlation)


class Correlation:
    """Pure ASGI middleware (no task or stream per request, unlike ``@app.middleware``): the
    request's X-Correlation-Id, or a new one, for the logs and events it causes, and echoed on
    the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = Headers(scope=scope).get("X-Correlation-Id") or str(uuid.uuid4())

        async def send_with_id(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Correlation-Id"] = value
            await send(message)

        token = correlation_id.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


_CODE_BY_STATUS = {
    401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED",
}


class Edge:
    """What routes need from the composition root: authentication, the clock and commands."""

    def __init__(self, tokens: TokenRegistry, clock: BusinessClock) -> None:
        self.tokens = tokens
        self.clock = clock

    # The two dependencies are coroutines: they only compare digests and take a rate-limit token
    # (a stat of the tokens file, a read when it changed), so they run on the event loop instead
    # of costing every request two hops through the thread pool.

    def principal(self) -> Callable[[Request], Awaitable[Principal]]:
        async def dependency(request: Request) -> Principal:
            principal = self.tokens.authenticate(request.headers.get("Authorization"))
            limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
            if limiter is not None:
                limiter.admit(principal.institution)
            return principal

        dependency.authenticates = True  # type: ignore[attr-defined]  # read by the OpenAPI document
        return dependency

    def roles(self, *roles: str) -> Any:
        authenticate = self.principal()

        async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
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


MinPosition = Annotated[int | None, Query(
    ge=0, le=2**63 - 1,
    description="A position a write returned, from any service: the read waits briefly until this service has "
                "applied what it names (INTERFACES.md §1, read-your-writes across services).",
)]
"""The ``?min_position=`` every read takes (``ServiceContext.wait_for``)."""


class ClockBody(StrictModel):
    now: Annotated[datetime, Field(strict=False)]

    @field_validator("now", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        """A bare number would be taken for seconds since 1970."""
        if not isinstance(value, str):
            raise ValueError("now must be an RFC 3339 string")
        return value


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
        if not within_business_years(body.now):
            raise DomainError(f"now must be from {EARLIEST.date()} up to, not including, {LATEST.date()} "
                              "(Asia/Shanghai)", code="VALIDATION_FAILED")
        return {"now": rfc3339(clock.set(body.now))}

    return router


# --- Limits every request meets at the edge -------------------------------------------------


class RateLimiter:
    """A token bucket per institution: ``per_second`` requests on average, ``burst`` at once.
    Every service of one process shares it, so an institution's budget is per process."""

    def __init__(self, per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = per_second, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def admit(self, institution: str) -> None:
        """Take one token or refuse with 429 RATE_LIMITED and how long to wait."""
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(institution, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            admitted = tokens >= 1
            self._buckets[institution] = (tokens - 1 if admitted else tokens, now)
        if not admitted:
            wait = math.ceil((1 - tokens) / self._rate)
            raise StarletteHTTPException(
                429, f"too many requests from {institution}; retry after {wait} s", headers={"Retry-After": str(wait)},
            )


class RequestLimits:
    """Pure ASGI middleware: refuses a body larger than ``max_body_bytes`` (declared or chunked)
    with 413 PAYLOAD_TOO_LARGE, a body that is not JSON with 415 UNSUPPORTED_MEDIA_TYPE, and a
    path with control characters with 404 NOT_FOUND, before any route reads the request. The
    body is read here (it is small by then) and handed on unchanged."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if _CONTROL_CHARACTER.search(scope["path"]):
            await _refuse(send, 404, "NOT_FOUND", "no resource has this path")
            return
        declared = headers.get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit() and int(declared) <= self.max_body_bytes):
            await _refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not _is_json(headers.get("content-type")):
            await _refuse(send, 415, "UNSUPPORTED_MEDIA_TYPE", "request bodies are JSON (Content-Type: application/json)")
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body_bytes} bytes"


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=256)
def _is_json(content_type: str | None) -> bool:
    """No Content-Type is read as JSON, as FastAPI does; a declared one must be JSON. Remembered
    for the few types clients send: parsing one as a MIME header took most of this middleware's
    25 µs a request."""
    if content_type is None:
        return True
    parsed = Message()
    parsed["content-type"] = content_type
    subtype = parsed.get_content_subtype()
    return parsed.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> ASGIMessage:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(send: Send, status: int, code: str, detail: str) -> None:
    body = orjson.dumps(problem(status, code, code.replace("_", " ").capitalize(), detail))
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def install_limits(app: FastAPI, settings: ServiceSettings) -> None:
    """The edge's limits (body size, media type, rate per institution) and the problem
    responses they and every route may give, declared in the OpenAPI document."""
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    _document_problems(app)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "code": {"type": "string"}, "detail": {"type": "string"},
    },
}
_EVERY_CALL = {"400": "Malformed request", "404": "Not found", "409": "Conflict with the current state",
               "413": "Request body too large", "415": "Request body is not JSON", "422": "Refused by a rule or the schema"}
_AUTHENTICATED_CALL = {"401": "No valid bearer token", "403": "Not open to this role", "429": "Rate limited"}


def _document_problems(app: FastAPI) -> None:
    """Replace FastAPI's default 422 with the problem document every error really is, declare
    it for each status the edge can answer, and mark the calls that need a bearer token."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI until a route is added
        if "Problem" not in document.get("components", {}).get("schemas", {}):
            authenticated = {
                (method, route.path_format) for route in iter_route_contexts(app.routes)
                if isinstance(route.original_route, APIRoute) and _authenticates(route.original_route.dependant)
                for method in route.methods or ()
            }
            components = document.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
            components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
            for path, item in document.get("paths", {}).items():
                for method, operation in item.items():
                    statuses = dict(_EVERY_CALL)
                    if (method.upper(), path) in authenticated:
                        statuses.update(_AUTHENTICATED_CALL)
                        operation["security"] = [{"bearer": []}]
                    responses = operation.setdefault("responses", {})
                    for status, description in statuses.items():
                        responses[status] = {"description": description, "content": {
                            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for unused in ("HTTPValidationError", "ValidationError"):
                components["schemas"].pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _authenticates(dependant: Dependant) -> bool:
    return any(getattr(d.call, "authenticates", False) for d in _walk(dependant))


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)
