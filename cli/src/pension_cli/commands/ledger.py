"""``pension ledger verify``: audit every service's ledger (sequences and hash chains from zero)."""

from __future__ import annotations

import argparse

import orjson

from pension_cli.deployment import SERVICE_NAMES, add_target_arguments, deployment_from
from pension_cli.output import progress
from pension_shared.verification import verify_ledger


def register(commands: argparse._SubParsersAction) -> None:
    ledger = commands.add_parser("ledger", help="audit the services' ledgers",
                                 description="Audit the services' ledgers (their event stores).")
    actions = ledger.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="check every stream's sequence and hash chain from zero",
        description="Recompute every event's hash and check each stream's sequence, chain and head, per "
        "service. Prints the streams and events checked and the first break exactly (stream, sequence, "
        "position, event id, reason). Exits 1 when any ledger is broken.",
    )
    verify.add_argument("--service", choices=SERVICE_NAMES, action="append",
                        help="only this service (repeatable; default: all four)")
    verify.add_argument("--json", action="store_true", help="one JSON document per service")
    add_target_arguments(verify)
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    broken = False
    with progress() as bars:
        task = bars.add_task("verifying ledgers", total=len(args.service or SERVICE_NAMES))
        for ledger in deployment.ledgers(args.service):
            with ledger.engine.connect() as conn:
                report = verify_ledger(conn)
            ledger.engine.dispose()
            bars.advance(task)
            broken = broken or not report.intact
            first = report.first_break
            if args.json:
                print(orjson.dumps({
                    "service": ledger.name, "intact": report.intact, "streams": report.streams,
                    "events": report.events, "breaks": len(report.breaks),
                    "first_break": first and {
                        "stream": first.stream_id, "sequence": first.sequence, "position": first.position,
                        "event_id": first.event_id, "reason": first.reason,
                    },
                }).decode(), flush=True)
                continue
            state = "intact" if report.intact else "BROKEN"
            print(f"{ledger.name:<13} {state:<7} {report.streams} streams, {report.events} events checked", flush=True)
            if first is not None:
                print(f"  first break: stream {first.stream_id} sequence {first.sequence} position {first.position} "
                      f"event {first.event_id}: {first.reason}")
                if len(report.breaks) > 1:
                    print(f"  ({len(report.breaks) - 1} more broken stream(s))")
    return 1 if broken else 0
