"""``pension console``: the operators' web console as a process of its own, for the production
shape (``pension run`` serves it already, beside the APIs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pension_cli.deployment import DeploymentError, add_target_arguments, deployment_from


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "console", help="serve the operators' web console (live events, lag, dead letters, audits, monthly chart)",
        description="Serve the web console at http://HOST:PORT/console for the deployment the other operator "
        "commands work against: the four services' databases and the log. Operators sign in with their "
        "token (production: from PENSION_TOKENS_FILE, which must be set; the development tokens only on the "
        "embedded target). Set PENSION_CONSOLE_SECRET when several console processes share one address.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    add_target_arguments(parser)
    parser.set_defaults(handler=_console)


def console_app(deployment, environ: dict[str, str] | None = None):  # noqa: ANN001, ANN201
    """The console's own app, with the edge every service has: problem+json, correlation ids,
    the request limits and a rate per institution, /health."""
    from fastapi import FastAPI

    from pension_cli.console import Console, install_console
    from pension_shared.auth import TokenRegistry
    from pension_shared.clock import SettableClock, WallClock
    from pension_shared.web import RateLimiter, RequestLimits, install_correlation, install_problem_handlers

    env = dict(os.environ if environ is None else environ)
    production = deployment.target == "production"
    tokens_file = env.get("PENSION_TOKENS_FILE")
    if production and not tokens_file:
        raise DeploymentError("production target: PENSION_TOKENS_FILE is not set (the operators' tokens)")
    tokens = TokenRegistry.from_file(Path(tokens_file) if tokens_file else None, development=not production)
    clock = WallClock() if production else SettableClock(Path(deployment.log_location).parent / "clock.json")
    app = FastAPI(title="Personal pension: operators' console", docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    install_correlation(app)
    app.add_middleware(RequestLimits, max_body_bytes=64 * 1024)
    app.state.rate_limiter = RateLimiter(50.0, 100)
    console = Console(deployment, tokens, clock)
    install_console(app, console)
    app.state.console = console

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "up"}

    return app


def _console(args: argparse.Namespace) -> int:
    from pension_cli.console import serve
    from pension_shared.observability import configure_logging

    configure_logging(structured=os.environ.get("PENSION_LOG_FORMAT", "json") == "json")
    app = console_app(deployment_from(args))
    print(f"operators' console: http://{args.host}:{args.port}/console", flush=True)
    try:
        serve(app, host=args.host, port=args.port, on_exit=app.state.console.live.end_streams)
    finally:
        app.state.console.close()
    return 0
