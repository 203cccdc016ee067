"""``pension ledger verify``: audit every service's ledger (sequences and hash chains from zero)."""

from __future__ import annotations

import argparse

import orjson

from pension_cli.deployment import SERVICE_NAMES, add_target_arguments, deployment_from
from pension_cli.ledgers import verification
from pension_cli.output import progress


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
            found = verification(ledger)
            bars.advance(task)
            broken = broken or not found["intact"]
            if args.json:
                print(orjson.dumps(found).decode(), flush=True)
                continue
            state = "intact" if found["intact"] else "BROKEN"
            print(f"{ledger.name:<13} {state:<7} {found['streams']} streams, {found['events']} events checked", flush=True)
            if (first := found["first_break"]) is not None:
                print(f"  first break: stream {first['stream']} sequence {first['sequence']} position {first['position']} "
                      f"event {first['event_id']}: {first['reason']}")
                if found["breaks"] > 1:
                    print(f"  ({found['breaks'] - 1} more broken stream(s))")
    return 1 if broken else 0
