"""``pension reconcile``: do the four ledgers agree on contributions and payouts?"""

from __future__ import annotations

import argparse
from datetime import date

import orjson

from pension_cli.deployment import SERVICE_NAMES, add_target_arguments, deployment_from
from pension_cli.ledgers import read_ledgers
from pension_cli.reconciliation import reconcile
from pension_shared.pii import mask_id_numbers


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reconcile", help="cross-check contributions, vouchers, payouts and tax across the four ledgers",
        description="Read every service's ledger and check, per participant and year, that the fund account's "
        "contributions (net of reversals) equal the platform's records and the tax vouchers (issued minus voided); "
        "that each payment's tax is 3 %% half up of its gross and equals what the tax service withheld; and that "
        "each instalment the fund account debited equals its payments' gross. Each break names the event ids "
        "involved. Exits 1 when anything does not reconcile (events still in flight show as breaks: check "
        "`pension consumers`).",
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                        help="only events recorded on or before this business date (Asia/Shanghai)")
    parser.add_argument("--json", action="store_true", help="the result as one JSON document")
    add_target_arguments(parser)
    parser.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    ledgers = read_ledgers(deployment_from(args), SERVICE_NAMES, as_of=args.as_of)
    result = reconcile(ledgers)
    if args.json:
        print(mask_id_numbers(orjson.dumps(result.as_dict(args.as_of)).decode()))
        return 0 if result.balanced else 1
    print(f"reconciliation{' as of ' + args.as_of.isoformat() if args.as_of else ''}: "
          f"{result.participant_years} participant-years, {result.contributions} contributions, "
          f"{result.payments} payments, {result.instalments} instalments: "
          f"{'balanced' if result.balanced else f'{len(result.breaks)} break(s)'}")
    for b in result.breaks:
        print(mask_id_numbers(f"  [{b.area}] {b.subject}: {b.reason}"))
        print(f"    events: {', '.join(b.event_ids)}")
    return 0 if result.balanced else 1
