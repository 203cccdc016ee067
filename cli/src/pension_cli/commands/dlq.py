"""``pension dlq show|retry|skip``: the dead letters, and what an operator does with them."""

from __future__ import annotations

import argparse

import orjson

from pension_cli import dead_letters
from pension_cli.deployment import add_target_arguments, deployment_from
from pension_cli.operations import operator_identity
from pension_shared.pii import mask_id_numbers


def register(commands: argparse._SubParsersAction) -> None:
    dlq = commands.add_parser(
        "dlq", help="show, retry or skip dead letters",
        description="Messages a consumer could not apply are parked in <topic>.dlq with their error. Retrying "
        "publishes the original message to its topic again (consumers deduplicate by event id); skipping leaves "
        "it. Both are recorded with the operator's identity in the account service's ledger (stream ops-dlq), "
        "and a handled letter is not shown again.",
    )
    actions = dlq.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="list the letters waiting for an operator",
                              description="List the dead letters not yet retried or skipped (ID numbers masked).")
    show.add_argument("--all", action="store_true", help="include letters already handled")
    show.add_argument("--value", action="store_true", help="also print each letter's original message (masked)")
    show.add_argument("--json", action="store_true", help="one JSON line per letter")
    add_target_arguments(show)
    show.set_defaults(handler=_show)
    for name, helptext in (("retry", "publish a letter's original message to its topic again"),
                           ("skip", "mark a letter as handled without applying it")):
        action = actions.add_parser(name, help=helptext, description=f"{helptext[0].upper()}{helptext[1:]}; "
                                    "the action is recorded in the operations ledger.")
        action.add_argument("letter", help="the letter id shown by `pension dlq show` (<dlq topic>:<partition>:<offset>)")
        action.add_argument("--operator", default=None,
                            help="who is acting (default: $PENSION_OPERATOR or user@host)")
        if name == "skip":
            action.add_argument("--reason", required=True, help="why the letter is skipped (recorded)")
        add_target_arguments(action)
        action.set_defaults(handler=_act, action_name=name)


def _show(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    log = deployment.log()
    try:
        found = dead_letters.letters(log, deployment.ledger("account").engine, deployment.dlq_topics())
    finally:
        log.close()
    shown = [letter for letter in found if args.all or letter.handled_by is None]
    for letter in shown:
        summary = letter.summary
        if args.value:
            summary["value"] = letter.document.get("value")
        if args.json:
            print(mask_id_numbers(orjson.dumps(summary).decode()))
            continue
        handled = summary["handled"]
        state = f"  [{handled['action']} by {handled['by']} at {handled['at']}]" if handled else ""
        print(mask_id_numbers(
            f"{letter.id}  {summary['consumer']}  {summary['topic']}[{summary['partition']}]@{summary['offset']}  "
            f"{summary['event_type']} {summary['event_id']}  attempts {summary['attempts']}  at {summary['failed_at']}{state}\n"
            f"    error: {summary['error']}" + (f"\n    value: {summary['value']}" if args.value else "")
        ))
    if not args.json:
        print(f"{len(shown)} letter(s){'' if args.all else ' waiting'}")
    return 0


def _act(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    log = deployment.log()
    operations = deployment.ledger("account").engine
    operator = operator_identity(args.operator)
    try:
        if args.action_name == "retry":
            recorded = dead_letters.retry(log, operations, deployment.dlq_topics(), args.letter, operator=operator)
        else:
            recorded = dead_letters.skip(log, operations, deployment.dlq_topics(), args.letter, operator=operator,
                                         reason=args.reason)
    except dead_letters.LetterNotFound as exc:
        print(f"pension dlq {args.action_name}: {exc}")
        return 1
    finally:
        log.close()
    print(f"{args.letter}: {recorded.event_type.name} by {operator} (event {recorded.id} on stream {recorded.streamid})")
    return 0
