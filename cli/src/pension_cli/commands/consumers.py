"""``pension consumers``: each consumer group's lag per topic and partition, and the dead-letter
queues' depth."""

from __future__ import annotations

import argparse

import orjson

from pension_cli.dead_letters import letters
from pension_cli.deployment import DeploymentError, add_target_arguments, deployment_from


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "consumers", help="consumer lag per group, topic and partition, and dead-letter queue depth",
        description="For each service's consumer group: per topic and partition, the committed offset, the end "
        "of the log and the lag between them. Then, per dead-letter topic, the letters parked, those an operator "
        "has handled (`pension dlq retry|skip`) and those still waiting.",
    )
    parser.add_argument("--json", action="store_true")
    add_target_arguments(parser)
    parser.set_defaults(handler=_consumers)


def lag_rows(log, deployment) -> list[dict]:  # noqa: ANN001
    rows = []
    for group, topics in deployment.consumer_groups().items():
        for topic in topics:
            ends, committed = log.end_offsets(topic), log.committed(group, topic)
            for partition in sorted(set(ends) | set(committed)):
                end, done = ends.get(partition, 0), committed.get(partition, 0)
                rows.append({"group": group, "topic": topic, "partition": partition, "committed": done,
                             "end": end, "lag": max(end - done, 0)})
    return rows


def dlq_rows(log, deployment, found: list | None = None) -> list[dict]:  # noqa: ANN001
    """Per dead-letter topic: the letters parked, handled and waiting (``found``: the letters,
    when the caller has read them already)."""
    try:
        operations = deployment.ledger("account").engine
    except DeploymentError:
        operations = None
    if found is None:
        found = letters(log, operations, deployment.dlq_topics())
    rows = []
    for topic in deployment.dlq_topics():
        mine = [letter for letter in found if letter.dlq_topic == topic]
        handled = sum(1 for letter in mine if letter.handled_by is not None)
        rows.append({"topic": topic, "parked": len(mine), "handled": handled if operations is not None else None,
                     "waiting": len(mine) - handled})
    return rows


def _consumers(args: argparse.Namespace) -> int:
    deployment = deployment_from(args)
    log = deployment.log()
    try:
        lags, dlqs = lag_rows(log, deployment), dlq_rows(log, deployment)
    finally:
        log.close()
    if args.json:
        print(orjson.dumps({"lag": lags, "dead_letters": dlqs}).decode())
        return 0
    _table(["group", "topic", "partition", "committed", "end", "lag"], lags)
    print()
    _table(["topic", "parked", "handled", "waiting"], dlqs)
    return 0


def _table(columns: list[str], rows: list[dict]) -> None:
    cells = [columns] + [["-" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
