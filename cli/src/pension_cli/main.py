"""``pension``: run the platform embedded, and operate it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pension_shared.auth import DEVELOPMENT_TOKENS_HELP


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pension", description="The personal pension platform.")
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
    args = parser.parse_args(argv)
    if args.command == "run":
        _run(args.host, args.port, args.var)


def _run(host: str, port: int, var: Path) -> None:
    import uvicorn

    from pension_cli.platform import embedded_platform

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    platform = embedded_platform(var)
    platform.migrate()
    platform.seed()
    platform.start_workers()
    base = f"http://{host}:{port}"
    print(
        "\nPersonal pension platform (embedded default: SQLite per service, embedded event log)\n"
        f"  API:      {base}  (OpenAPI: {base}/docs)\n"
        f"  data:     {var.resolve()}\n"
        "  development tokens (Authorization: Bearer <token>; they do not exist in production):\n"
        + "".join(f"    {token}\n" for token in DEVELOPMENT_TOKENS_HELP),
        flush=True,
    )
    try:
        uvicorn.run(platform.app(), host=host, port=port, log_level="info")
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
