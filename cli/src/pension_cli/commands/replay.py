"""``pension replay``: rebuild a service's read models from zero beside the live ones, compare,
and swap them in, without stopping the service."""

from __future__ import annotations

import argparse

import orjson
import sqlalchemy as sa

from pension_cli.deployment import SERVICE_NAMES, add_target_arguments, deployment_from
from pension_cli.output import progress
from pension_cli.replay import ReplayResult, ShadowReplay, replay_engine
from pension_shared.pii import mask_id_numbers
from pension_shared.schema import events

SAMPLE_ROWS = 5


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "replay", help="rebuild a service's projections into fresh tables, compare, and optionally swap",
        description="Replay every event of the service's ledger into fresh shadow tables (temporary tables of the "
        "same names and columns, on the replay's own connection), while the service keeps running; then, with "
        "appends to the ledger briefly blocked, replay what arrived meanwhile, compare the shadow rows with the "
        "live rows table by table, and with --swap replace the live rows by the replayed ones in the same "
        "transaction. Without --swap nothing changes: exit 0 when identical, 1 when the read models differ "
        "from their events (then --swap repairs them).",
    )
    parser.add_argument("--service", choices=SERVICE_NAMES, required=True)
    parser.add_argument("--swap", action="store_true",
                        help="swap the replayed tables in, even when they differ (that is the repair)")
    parser.add_argument("--json", action="store_true")
    add_target_arguments(parser)
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    ledger = deployment_from(args).ledger(args.service)
    with ledger.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    ledger.engine.dispose()
    engine = replay_engine(str(ledger.engine.url.render_as_string(hide_password=False)))
    try:
        with progress() as bars:
            task = bars.add_task(f"replaying {args.service}", total=total)
            result = ShadowReplay(ledger.store, engine).run(swap=args.swap, progress=lambda n: bars.advance(task, n))
    finally:
        engine.dispose()
    _print(result, as_json=args.json)
    return 0 if result.identical or result.swapped else 1


def _print(result: ReplayResult, *, as_json: bool) -> None:
    if as_json:
        print(mask_id_numbers(orjson.dumps({
            "service": result.service, "replayed": result.replayed, "caught_up": result.caught_up,
            "identical": result.identical, "swapped": result.swapped,
            "writers_blocked_s": round(result.writers_blocked_s, 3),
            "tables": [{"table": t.name, "live_rows": t.live_rows, "replayed_rows": t.replayed_rows,
                        "only_live": [list(map(str, r)) for r in t.only_live[:SAMPLE_ROWS]],
                        "only_replayed": [list(map(str, r)) for r in t.only_replayed[:SAMPLE_ROWS]],
                        "changed": [{"key": list(map(str, key)), "columns": {c: [str(a), str(b)] for c, (a, b) in cols.items()}}
                                    for key, cols in t.changed[:SAMPLE_ROWS]],
                        "differences": t.differences} for t in result.tables],
        }).decode()))
        return
    print(f"{result.service}: {result.replayed + result.caught_up} events replayed "
          f"({result.caught_up} while appends were held for {result.writers_blocked_s:.3f} s)")
    for t in result.tables:
        state = "identical" if t.identical else (
            f"{len(t.changed)} row(s) changed, {len(t.only_live)} only live, {len(t.only_replayed)} only replayed")
        print(f"  {t.name:<24} live {t.live_rows:>6}  replayed {t.replayed_rows:>6}  {state}")
        for key, cols in t.changed[:SAMPLE_ROWS]:
            shown = ", ".join(f"{c}: live {_short(a)} / replayed {_short(b)}" for c, (a, b) in cols.items())
            print(mask_id_numbers(f"    changed {_short(key)}: {shown}"))
        for label, rows in (("live only", t.only_live), ("replayed only", t.only_replayed)):
            for row in rows[:SAMPLE_ROWS]:
                print(mask_id_numbers(f"    {label}: {_short(row)}"))
    verdict = "identical" if result.identical else "DIFFERENT"
    action = "swapped in" if result.swapped else "not swapped (use --swap to replace the live rows)" if not result.identical else "nothing to swap"
    print(f"read models {verdict}; {action}")


def _short(value: object) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 160 else text[:157] + "..."
