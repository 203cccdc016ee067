"""``pension events tail``: follow the topics live, one line per event, ID numbers masked."""

from __future__ import annotations

import argparse
import sys

import orjson

from pension_cli.deployment import add_target_arguments, deployment_from
from pension_shared.envelope import Envelope, MalformedEvent, parse_cloudevent
from pension_shared.messaging import IncomingRecord
from pension_shared.pii import mask_id_numbers


def register(commands: argparse._SubParsersAction) -> None:
    events = commands.add_parser("events", help="watch the event streams", description="Watch the event streams.")
    actions = events.add_subparsers(dest="action", required=True)
    tail = actions.add_parser(
        "tail", help="print events as they are published",
        description="Print one line per event (time, topic, type, subject, sequence) or, with --json, one JSON "
        "line per record with the whole CloudEvent. Anything shaped like an ID number is masked, on every topic "
        "(pension.tax included). Follows new events until interrupted, unless --no-follow.",
    )
    which = tail.add_mutually_exclusive_group()
    which.add_argument("--topic", action="append", help="a topic to follow (repeatable), e.g. pension.tax or pension.tax.dlq")
    which.add_argument("--all", action="store_true", help="the four services' topics, with --topic-prefix (the default)")
    tail.add_argument("--participant", help="only events whose subject is this participant id")
    tail.add_argument("--type", dest="event_type",
                      help="only this event type: the full type or its name, e.g. ContributionReceived")
    tail.add_argument("--json", action="store_true", help="JSON lines")
    tail.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True,
                      help="keep waiting for new events (default); --no-follow prints what is there and exits")
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the beginning of the topics (always so with --no-follow)")
    add_target_arguments(tail)
    tail.set_defaults(handler=_tail)


def _wanted(envelope: Envelope, args: argparse.Namespace) -> bool:
    if args.participant and envelope.subject != args.participant:
        return False
    if args.event_type and args.event_type not in (envelope.type, envelope.event_type.name):
        return False
    return True


def record_document(record: IncomingRecord, envelope: Envelope | None) -> dict:
    """One record as ``--json`` prints it (not yet masked): where it is, and the whole CloudEvent."""
    event = envelope.to_cloudevent() if envelope else None
    return {
        "topic": record.topic, "partition": record.partition, "offset": record.offset, "key": record.key,
        "event": event, **({} if envelope else {"raw": record.value.decode("utf-8", "replace")}),
    }


def render(record: IncomingRecord, envelope: Envelope | None, *, as_json: bool) -> str:
    if as_json:
        line = orjson.dumps(record_document(record, envelope)).decode()
    elif envelope is None:
        line = f"{'-':<25} {record.topic:<21} (not an event of this platform) at [{record.partition}]@{record.offset}"
    else:
        line = (f"{envelope.time:<25} {record.topic:<21} {envelope.type:<52} "
                f"subject={envelope.subject} seq={envelope.sequence}")
    return mask_id_numbers(line)


def _tail(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    topics = args.topic or deployment.topics()
    log = deployment.log()
    try:
        for record in log.records(topics, from_beginning=args.from_beginning or not args.follow, follow=args.follow):
            try:
                envelope = parse_cloudevent(record.value)
            except MalformedEvent:
                envelope = None
            if envelope is None and (args.participant or args.event_type):
                continue
            if envelope is not None and not _wanted(envelope, args):
                continue
            print(render(record, envelope, as_json=args.json), flush=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()
    finally:
        log.close()
    return 0
