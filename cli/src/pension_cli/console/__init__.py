"""The operators' web console at ``/console``: the event streams live (server-sent events), the
consumers' lag and the dead letters, the ledgers' verification, the latest reconciliation and the
monthly figures as a chart.

It is served by ``pension run`` beside the APIs, and in the production shape by ``pension
console``, an operator process configured like every other operator command (the four services'
databases and the log, see ``deployment.py``). Everything it shows is computed by the code of
the operator commands; it only serves it. Verification, reconciliation and the monthly figures
read whole ledgers, so they run when an operator asks and the latest result is kept with its
time; loading the page shows what is kept (it asks for the monthly figures only when none were
computed yet).

Routes are for the page only and left out of the OpenAPI document (the institutions' contract).
The page and its script are public; every data route needs the operator role, by bearer token or
by the session the page gets for the token (``sessions.py``): none is 401, another role 403."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from pension_cli.commands.consumers import dlq_rows, lag_rows
from pension_cli.console.live import END, LiveEvent, LiveEvents
from pension_cli.console.sessions import COOKIE, Sessions
from pension_cli.dead_letters import letters
from pension_cli.deployment import SERVICE_NAMES, Deployment, DeploymentError
from pension_cli.ledgers import read_ledgers, verification
from pension_cli.monthly import monthly_document, monthly_figures
from pension_cli.reconciliation import reconcile
from pension_shared.auth import Principal, TokenRegistry, digest, require_role
from pension_shared.clock import BusinessClock, rfc3339
from pension_shared.errors import Unauthenticated
from pension_shared.pii import MaskIdNumbers, mask_id_numbers
from pension_shared.web import IsoDate, StrictModel

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STREAM_LIFETIME_S = 300.0
"""A stream ends after this long and the browser reconnects, showing its session again: an
expired session stops the live view too."""
KEEP_ALIVE_S = 15.0
CONSUMERS_FRESH_S = 3.0


class MaskedJSON(JSONResponse):
    """Every answer of the console: ID numbers masked, whatever they are found in."""

    def render(self, content: Any) -> bytes:
        return mask_id_numbers(orjson.dumps(content).decode()).encode()


@dataclass
class Finding:
    computed_at: str
    took_ms: int
    result: Any

    def as_dict(self) -> dict[str, Any]:
        return {"computed_at": self.computed_at, "took_ms": self.took_ms, "result": self.result}


@dataclass
class Findings:
    """The latest result of each expensive look, with its time. One look at a time: they read
    whole ledgers, and an operator pressing twice should not double the load."""

    latest: dict[str, Finding] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> dict[str, Any]:
        found = self.latest.get(name)
        return found.as_dict() if found else {"computed_at": None, "took_ms": None, "result": None}

    def compute(self, name: str, work: Callable[[], Any]) -> dict[str, Any]:
        with self._lock:
            started = time.perf_counter()
            result = work()
            took_ms = round((time.perf_counter() - started) * 1000)
            self.latest[name] = Finding(rfc3339(datetime.now(timezone.utc)), took_ms, result)
            return self.latest[name].as_dict()


class VerificationRequest(StrictModel):
    services: list[Literal["account", "fund-account", "tax", "payout"]] | None = None


class ReconciliationRequest(StrictModel):
    as_of: IsoDate | None = None
    """Only events recorded on or before this business date."""


class MonthlyRequest(StrictModel):
    months: int = Field(12, ge=1, le=36)
    """How many months, ending with the business clock's month."""


class SessionRequest(StrictModel):
    """Opening a session: the token travels in the Authorization header, never in a body."""


class Console:
    def __init__(self, deployment: Deployment, tokens: TokenRegistry, clock: BusinessClock, *,
                 sessions: Sessions | None = None) -> None:
        self.deployment = deployment
        self.tokens = tokens
        self.clock = clock
        self.sessions = sessions or Sessions()
        self.findings = Findings()
        self.live = LiveEvents(deployment.log, deployment.topics())
        self._consumers: tuple[float, dict[str, Any]] | None = None

    def close(self) -> None:
        self.live.stop()
        for name in SERVICE_NAMES:
            try:
                self.deployment.ledger(name).engine.dispose()
            except DeploymentError:
                continue

    # -- what the page shows ------------------------------------------------------------------

    def consumers(self) -> dict[str, Any]:
        """Lag per group, topic and partition; dead letters per topic and those waiting (as
        ``pension consumers`` and ``pension dlq show``), looked at most every few seconds."""
        if self._consumers is not None and time.monotonic() - self._consumers[0] < CONSUMERS_FRESH_S:
            return self._consumers[1]
        reader = self.deployment.log()
        try:
            try:
                operations = self.deployment.ledger("account").engine
            except DeploymentError:
                operations = None
            found = letters(reader, operations, self.deployment.dlq_topics())
            looked = {
                "at": rfc3339(datetime.now(timezone.utc)),
                "lag": lag_rows(reader, self.deployment),
                "dead_letters": dlq_rows(reader, self.deployment, found),
                "waiting": [letter.summary for letter in found if letter.handled_by is None][-50:],
            }
        finally:
            reader.close()
        self._consumers = (time.monotonic(), looked)
        return looked

    def verify(self, request: VerificationRequest) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            services = [verification(ledger) for ledger in self.deployment.ledgers(request.services)]
            return {"intact": all(s["intact"] for s in services), "services": services}

        return self.findings.compute("verification", work)

    def reconcile(self, request: ReconciliationRequest) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            return reconcile(read_ledgers(self.deployment, SERVICE_NAMES, as_of=request.as_of)).as_dict(request.as_of)

        return self.findings.compute("reconciliation", work)

    def monthly(self, request: MonthlyRequest) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            ledgers = read_ledgers(self.deployment, ("fund-account", "payout", "tax"))
            months = _months_ending(self.clock.now().date(), request.months)
            return {"through": months[-1], "months": [monthly_document(monthly_figures(ledgers, m), m) for m in months]}

        return self.findings.compute("monthly", work)

    # -- who may look ---------------------------------------------------------------------------

    def operator(self, request: Request) -> Principal:
        """The bearer token when one is presented (curl, scripts), else the page's session."""
        header = request.headers.get("Authorization")
        cookie = request.cookies.get(COOKIE)
        if header is None and cookie:
            principal, token_digest = self.sessions.principal(cookie)
            if not self.tokens.still_accepts(token_digest):
                raise Unauthenticated("the token this session was opened with is no longer accepted; sign in again")
        else:
            principal = self.tokens.authenticate(header)
        limiter = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            limiter.admit(principal.institution)
        return require_role(principal, "operator")

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/console", include_in_schema=False, default_response_class=MaskedJSON)
        operator = Depends(self.operator)

        @router.get("")
        def page() -> Response:
            return _static("console.html", "text/html; charset=utf-8")

        @router.get("/console.js")
        def script() -> Response:
            return _static("console.js", "text/javascript; charset=utf-8")

        @router.get("/console.css")
        def style() -> Response:
            return _static("console.css", "text/css; charset=utf-8")

        @router.post("/session")
        def sign_in(request: Request, body: SessionRequest | None = None) -> Response:
            header = request.headers.get("Authorization")
            principal = require_role(self.tokens.authenticate(header), "operator")
            response = MaskedJSON({"role": principal.role, "expires_in_s": self.sessions.ttl_s})
            token_digest = digest(header[len("Bearer "):].strip())  # authenticate() read it so
            response.set_cookie(
                COOKIE, self.sessions.issue(principal, token_digest), max_age=self.sessions.ttl_s, path="/console",
                httponly=True, samesite="strict", secure=request.url.scheme == "https",
            )
            response.headers["Cache-Control"] = "no-store"
            return response

        @router.delete("/session", status_code=204)
        def sign_out(body: SessionRequest | None = None, _: Principal = operator) -> Response:
            response = Response(status_code=204)
            response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
            return response

        @router.get("/api/consumers")
        def consumers(_: Principal = operator) -> dict[str, Any]:
            return self.consumers()

        @router.get("/api/verification")
        def latest_verification(_: Principal = operator) -> dict[str, Any]:
            return self.findings.get("verification")

        @router.post("/api/verification")
        def run_verification(body: VerificationRequest | None = None, _: Principal = operator) -> dict[str, Any]:
            return self.verify(body or VerificationRequest())

        @router.get("/api/reconciliation")
        def latest_reconciliation(_: Principal = operator) -> dict[str, Any]:
            return self.findings.get("reconciliation")

        @router.post("/api/reconciliation")
        def run_reconciliation(body: ReconciliationRequest | None = None, _: Principal = operator) -> dict[str, Any]:
            return self.reconcile(body or ReconciliationRequest())

        @router.get("/api/monthly")
        def latest_monthly(_: Principal = operator) -> dict[str, Any]:
            return self.findings.get("monthly")

        @router.post("/api/monthly")
        def run_monthly(body: MonthlyRequest | None = None, _: Principal = operator) -> dict[str, Any]:
            return self.monthly(body or MonthlyRequest())

        @router.get("/api/events")
        async def events(follow: bool = True, _: Principal = operator) -> Response:
            """Server-sent events, one per record of the four topics; without ``follow``, the
            events kept so far and the end (``pension events tail --no-follow``)."""
            if not follow:
                kept = await run_in_threadpool(self.live.kept)
                return Response("".join(_frame(e) for e in kept), media_type="text/event-stream",
                                headers={"Cache-Control": "no-store"})
            return StreamingResponse(self._stream(asyncio.get_running_loop()), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

        return router

    async def _stream(self, loop: asyncio.AbstractEventLoop) -> AsyncIterator[str]:
        watcher, kept = self.live.watch(loop)
        ends = loop.time() + STREAM_LIFETIME_S
        try:
            yield "retry: 2000\n\n"
            for event in kept:
                yield _frame(event)
            while not watcher.overflowed and loop.time() < ends:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=min(KEEP_ALIVE_S, ends - loop.time()))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is END:
                    return
                yield _frame(event)
        finally:
            self.live.unwatch(watcher)


def _frame(event: LiveEvent) -> str:
    return f"id: {event.id}\nevent: ledger-event\ndata: {event.data}\n\n"


def _static(name: str, media_type: str) -> Response:
    return Response((STATIC / name).read_bytes(), media_type=media_type, headers=PAGE_HEADERS)


def _months_ending(day: date, count: int) -> list[str]:
    index = day.year * 12 + day.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


def install_console(app: FastAPI, console: Console) -> None:
    app.include_router(console.router())


def serve(app: FastAPI, *, host: str, port: int, on_exit: Callable[[], None]) -> None:
    """uvicorn, telling the consoles to end their live streams as soon as it is asked to stop:
    it waits for open connections, and a stream would otherwise stay open until cut."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            on_exit()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config: the filter after it
    if not any(isinstance(f, MaskIdNumbers) for f in access.filters):
        access.addFilter(MaskIdNumbers())
    try:
        Server(config).run()
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C again once it has stopped, as uvicorn.run swallows it
        pass
