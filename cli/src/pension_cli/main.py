"""``pension``: run the platform embedded, and operate it."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from pension_cli.deployment import DeploymentError
from pension_shared.auth import DEVELOPMENT_TOKENS_HELP


OPERATOR_COMMANDS = ("ledger", "replay", "reconcile", "consumers", "dlq", "events", "report", "console")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pension", description="The personal pension platform: run it embedded, and operate a deployment "
        "(the embedded default under --var, or production through PENSION_* variables with --target production).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run all four services on the embedded default (SQLite + embedded log) on one port",
        description="Start the account, fund-account, tax and payout services in one process, each with its "
        "own SQLite database, their relays and consumers on the embedded event log, and every API on one port.",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--var", type=Path, default=Path(os.environ.get("PENSION_VAR", "var")),
                     help="where the databases, the event log and the clock are kept (default: ./var)")
    run.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("PENSION_LOG_FORMAT", "text"),
                     help="json: one JSON object per line with the correlation id (default: $PENSION_LOG_FORMAT or text)")
    run.set_defaults(handler=lambda args: _run(args.host, args.port, args.var, args.log_format))
    for name in OPERATOR_COMMANDS:
        importlib.import_module(f"pension_cli.commands.{name}").register(commands)
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except DeploymentError as exc:
        print(f"pension: {exc}", file=sys.stderr)
        return 2


def _run(host: str, port: int, var: Path, log_format: str = "text") -> None:
    from pension_cli.console import serve
    from pension_cli.platform import embedded_platform
    from pension_shared.observability import configure_logging

    configure_logging(structured=log_format == "json")
    platform = embedded_platform(var)
    platform.migrate()
    platform.seed()
    platform.start_workers()
    base = f"http://{host}:{port}"
    print(
        "\nPersonal pension platform (embedded default: SQLite per service, embedded event log)\n"
        f"  API:      {base}  (OpenAPI: {base}/docs)\n"
        f"  console:  {base}/console  (operators: sign in with the operator token)\n"
        f"  data:     {var.resolve()}\n"
        "  development tokens (Authorization: Bearer <token>; they do not exist in production):\n"
        + "".join(f"    {token}\n" for token in DEVELOPMENT_TOKENS_HELP),
        flush=True,
    )
    try:
        serve(platform.app(), host=host, port=port, on_exit=platform.end_streams)
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
