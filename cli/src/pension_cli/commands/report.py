"""``pension report monthly``: the month's figures per bank and region, from the ledgers."""

from __future__ import annotations

import argparse
import re

import orjson

from pension_cli.deployment import add_target_arguments, deployment_from
from pension_cli.ledgers import read_ledgers
from pension_cli.monthly import Figures, monthly_document, monthly_figures, total
from pension_shared.money import format_fen


def _month(text: str) -> str:
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError("a month is YYYY-MM")
    return text


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="reports from the ledgers", description="Reports computed from the ledgers.")
    kinds = report.add_subparsers(dest="report", required=True)
    monthly = kinds.add_parser(
        "monthly", help="accounts opened, contributions, withdrawals and tax withheld per bank and region",
        description="Per bank and region (the fund account's branch city) for one month (Asia/Shanghai): fund "
        "accounts opened, participants contributing, the amount contributed net of reversals, withdrawals paid "
        "(count and gross) and the tax withheld net of reversals. Amounts in yuan.",
    )
    monthly.add_argument("--month", type=_month, required=True, metavar="YYYY-MM")
    monthly.add_argument("--json", action="store_true", help="JSON (amounts as yuan strings)")
    add_target_arguments(monthly)
    monthly.set_defaults(handler=_monthly)


def _monthly(args: argparse.Namespace) -> int:
    figures = monthly_figures(read_ledgers(deployment_from(args), ("fund-account", "payout", "tax")), args.month)
    if args.json:
        print(orjson.dumps(monthly_document(figures, args.month)).decode())
        return 0
    header = ("bank", "region", "opened", "contributors", "contributed", "withdrawals", "withdrawn", "tax withheld")
    lines = [header] + [
        (bank, region, *_cells(row)) for (bank, region), row in figures.items()
    ] + [("total", "", *_cells(total(figures.values())))]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    print(f"monthly report {args.month}")
    for line in lines:
        print("  ".join(str(cell).rjust(w) if i >= 2 else str(cell).ljust(w) for i, (cell, w) in enumerate(zip(line, widths))))
    return 0


def _cells(row: Figures) -> tuple:
    d = row.as_dict()
    return (d["accounts_opened"], d["participants_contributing"], format_fen(d["contributed"]), d["withdrawals"],
            format_fen(d["withdrawn"]), format_fen(d["tax_withheld"]))
