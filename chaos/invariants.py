"""The checks after the run, once everything has caught up: with the operators' own code where
it exists (``pension ledger verify``, ``pension reconcile``, ``pension consumers``) and direct
checks of what the load generator was told against the four ledgers.

Each check counts how many times it was checked (a contribution, a participant, a payment, a
ledger ...) and lists its violations."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

import sqlalchemy as sa

from chaos.load import Acknowledged
from pension_cli.commands.consumers import dlq_rows, lag_rows
from pension_cli.deployment import SERVICE_NAMES, Deployment
from pension_cli.ledgers import named, read_ledgers
from pension_cli.reconciliation import reconcile
from pension_shared.envelope import Envelope
from pension_shared.money import format_fen
from pension_shared.policy import policy_on
from pension_shared.verification import verify_ledger


@dataclass
class Check:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def expect(self, ok: bool, violation: str) -> None:
        self.checked += 1
        if not ok:
            self.violations.append(violation)


@dataclass
class Baseline:
    """What the set-up (before any fault) put in the fund accounts, acknowledged then."""

    contributions: dict[str, Envelope] = field(default_factory=dict)
    income: dict[str, int] = field(default_factory=dict)


def deployment_of(database_urls: dict[str, str], kafka: str, prefix: str) -> Deployment:
    return Deployment("production", dict(database_urls), kafka, prefix.rstrip("."), partitions=12, topic_prefix=prefix)


def baseline(deployment: Deployment) -> Baseline:
    found = Baseline()
    for e in read_ledgers(deployment, ["fund-account"])["fund-account"]:
        if named(e) == "ContributionReceived":
            found.contributions[e.data["contribution_id"]] = e
        elif named(e) == "IncomeCredited":
            found.income[e.data["participant_id"]] = found.income.get(e.data["participant_id"], 0) + e.data["amount"]
    return found


def check_all(deployment: Deployment, acked: Acknowledged, base: Baseline) -> list[Check]:
    checks: list[Check] = []
    checks.append(_consumers(deployment))
    checks.append(_chains(deployment))
    ledgers = read_ledgers(deployment, SERVICE_NAMES)
    checks.append(_reconciliation(ledgers))
    checks.extend(_acknowledged_contributions(ledgers, acked, base))
    checks.append(_cap(ledgers))
    checks.append(_races(acked))
    checks.extend(_payouts(deployment, ledgers, acked))
    checks.extend(_money(deployment, ledgers, acked, base))
    server_errors = Check("no request answered 500 (a database outage is a 503 to retry)")
    server_errors.checked = sum(acked.statuses.values())
    server_errors.violations.extend(acked.server_errors)
    checks.append(server_errors)
    return checks


# -- the operators' checks ---------------------------------------------------------------------


def _consumers(deployment: Deployment) -> Check:
    check = Check("every consumer caught up (lag 0) and nothing dead-lettered (pension consumers)")
    log = deployment.log()
    try:
        for row in lag_rows(log, deployment):
            check.expect(row["lag"] == 0, f"{row['group']} {row['topic']}[{row['partition']}] lag {row['lag']}")
        for row in dlq_rows(log, deployment):
            check.expect(row["parked"] == 0, f"{row['topic']}: {row['parked']} dead letter(s)")
    finally:
        log.close()
    return check


def _chains(deployment: Deployment) -> Check:
    check = Check("every stream's sequence and hash chain verifies (pension ledger verify)")
    for ledger in deployment.ledgers():
        with ledger.engine.connect() as conn:
            report = verify_ledger(conn)
        ledger.engine.dispose()
        check.checked += report.streams - 1
        first = report.first_break
        check.expect(report.intact, f"{ledger.name}: {len(report.breaks)} broken stream(s), first "
                     f"{first and (first.stream_id, first.sequence, first.reason)}")
    return check


def _reconciliation(ledgers: dict[str, list[Envelope]]) -> Check:
    check = Check("reconciliation across the four ledgers finds no break (pension reconcile)")
    result = reconcile(ledgers)
    check.checked = result.participant_years + result.payments + result.instalments
    check.violations.extend(f"[{b.area}] {b.subject}: {b.reason}" for b in result.breaks)
    return check


# -- what the banks were told ----------------------------------------------------------------


def _by_contribution(events: Iterable[Envelope], name: str) -> dict[str, list[Envelope]]:
    found: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        if named(e) == name:
            found[e.data["contribution_id"]].append(e)
    return found


def _acknowledged_contributions(ledgers: dict[str, list[Envelope]], acked: Acknowledged, base: Baseline) -> list[Check]:
    places = (
        ("the fund-account ledger", "fund-account", "ContributionReceived"),
        ("the platform records", "account", "ContributionRecorded"),
        ("the tax vouchers", "tax", "DeductionVoucherIssued"),
    )
    checks = []
    for where, service, event in places:
        check = Check(f"every acknowledged contribution exactly once in {where}, with its amount")
        found = _by_contribution(ledgers[service], event)
        for c in acked.contributions:
            there = found.get(c.contribution_id, [])
            check.expect(len(there) == 1 and there[0].data["amount"] == c.amount,
                         f"contribution {c.contribution_id} of {format_fen(c.amount)} acknowledged, found "
                         f"{[format_fen(e.data['amount']) for e in there]} in {where}")
        checks.append(check)
    # And nothing the banks were not told about, except where a request stayed in doubt.
    check = Check("no contribution in the fund-account ledger that was not acknowledged (unless its request stayed in doubt)")
    known = {c.contribution_id for c in acked.contributions} | set(base.contributions)
    in_doubt = acked.in_doubt.get("contribution", set())
    for contribution_id, events in _by_contribution(ledgers["fund-account"], "ContributionReceived").items():
        participant = events[0].data["participant_id"]
        check.expect(contribution_id in known or participant in in_doubt,
                     f"contribution {contribution_id} of participant {participant} was never acknowledged")
    checks.append(check)
    return checks


def _cap(ledgers: dict[str, list[Envelope]]) -> Check:
    check = Check("no participant above the yearly cap (fund account, platform, vouchers)")
    places = (("fund-account", "ContributionReceived", "ContributionReversed"),
              ("account", "ContributionRecorded", None),
              ("tax", "DeductionVoucherIssued", "DeductionVoucherVoided"))
    for service, added, removed in places:
        totals: Counter = Counter()
        for e in ledgers[service]:
            sign = 1 if named(e) == added else -1 if removed and named(e) == removed else 0
            if sign:
                totals[(e.data["participant_id"], e.data["year"])] += sign * e.data["amount"]
        for (participant, year), total in sorted(totals.items()):
            cap = policy_on(date(year, 12, 31)).annual_contribution_cap
            check.expect(total <= cap, f"{service}: participant {participant} contributed {format_fen(total)} in {year}, "
                         f"above the cap {format_fen(cap)}")
    return check


def _races(acked: Acknowledged) -> Check:
    check = Check("two concurrent contributions that together exceed the cap: exactly one accepted")
    for race in acked.races:
        answered = race.accepted + race.refused_for_cap
        if answered < 2:
            continue  # one was refused for another reason or never answered: nothing to conclude
        check.expect(race.accepted == 1, f"participant {race.participant_id}: {race.accepted} of two contributions of "
                     f"{format_fen(race.amount)} accepted with {format_fen(race.remaining_before)} left")
    return check


def _payouts(deployment: Deployment, ledgers: dict[str, list[Envelope]], acked: Acknowledged) -> list[Check]:
    twice = Check("no payout made twice (payout ledger, fund-account debits, payments sent to the bank)")
    made: dict[str, list[Envelope]] = defaultdict(list)
    for e in ledgers["payout"]:
        if named(e) == "PayoutMade":
            made[e.data["payout_id"]].append(e)
    for payout_id, events in made.items():
        twice.expect(len(events) == 1, f"payment {payout_id} made {len(events)} times")
    debits: Counter = Counter(e.data["payout_id"] for e in ledgers["fund-account"] if named(e) == "PayoutDebited")
    for payout_id, count in debits.items():
        twice.expect(count == 1, f"instalment {payout_id} debited {count} times")
    engine = deployment.ledger("payout").engine
    with engine.connect() as conn:
        sent = {r.payment_id: r.amount for r in conn.execute(sa.text("SELECT payment_id, amount FROM recorded_payments"))}
    engine.dispose()
    for payout_id, events in made.items():
        twice.expect(sent.get(payout_id) == events[0].data["net"],
                     f"payment {payout_id}: net {format_fen(events[0].data['net'])} made, the bank was sent {sent.get(payout_id)}")
    for payment_id in set(sent) - set(made):
        twice.violations.append(f"the bank was sent payment {payment_id}, which the ledger does not record as made")

    withdrawn = Check("every acknowledged withdrawal paid: its instalments due so far, none more")
    by_withdrawal: dict[str, list[Envelope]] = defaultdict(list)
    for events in made.values():
        by_withdrawal[events[0].data["withdrawal_id"]].append(events[0])
    for withdrawal_id, plan in acked.withdrawals.items():
        payments = by_withdrawal.get(withdrawal_id, [])
        most = 1 if plan["method"] == "lump_sum" else plan["installments"]
        withdrawn.expect(1 <= len(payments) <= most,
                         f"withdrawal {withdrawal_id} ({plan['method']}): {len(payments)} payment(s), expected 1 to {most}")
    return [twice, withdrawn]


def _money(deployment: Deployment, ledgers: dict[str, list[Envelope]], acked: Acknowledged, base: Baseline) -> list[Check]:
    """Per participant: contributions + income = payouts (gross) + balance (cash and holdings at
    cost), each side from a different place: the banks' acknowledgements, the payout ledger and
    the fund account's read model."""
    engine = deployment.ledger("fund-account").engine
    with engine.connect() as conn:
        cash = dict(conn.execute(sa.text("SELECT participant_id, sum(cash) FROM fund_accounts GROUP BY participant_id")).all())
        held = dict(conn.execute(sa.text(
            "SELECT a.participant_id, sum(h.cost) FROM holdings h JOIN fund_accounts a USING (fund_account_id) "
            "GROUP BY a.participant_id")).all())
    engine.dispose()
    paid: Counter = Counter()
    for e in ledgers["payout"]:
        if named(e) == "PayoutMade":
            paid[e.data["participant_id"]] += e.data["gross"]
    ledger_in: Counter = Counter()
    for e in ledgers["fund-account"]:
        if named(e) in ("ContributionReceived", "IncomeCredited"):
            ledger_in[e.data["participant_id"]] += e.data["amount"]
        elif named(e) == "ContributionReversed":
            ledger_in[e.data["participant_id"]] -= e.data["amount"]
        elif named(e) == "ProductRedeemed":
            ledger_in[e.data["participant_id"]] += e.data["realised_gain"]
    acknowledged: Counter = Counter()
    for c in acked.contributions:
        acknowledged[c.participant_id] += c.amount
    for e in base.contributions.values():
        acknowledged[e.data["participant_id"]] += e.data["amount"]
    for source in (acked.income, base.income):
        for participant, amount in source.items():
            acknowledged[participant] += amount
    in_doubt = acked.in_doubt.get("contribution", set()) | acked.in_doubt.get("income", set())

    conserved = Check("money conserved per participant: contributions + income = payouts (gross) + balance")
    for participant in sorted(set(cash) | set(ledger_in) | set(paid)):
        balance = int(cash.get(participant) or 0) + int(held.get(participant) or 0)
        inflow = ledger_in[participant] if participant in in_doubt else acknowledged[participant]
        conserved.expect(inflow == paid[participant] + balance,
                         f"participant {participant}: in {format_fen(inflow)}, paid {format_fen(paid[participant])} "
                         f"+ balance {format_fen(balance)}" + (" (in doubt: ledger figures)" if participant in in_doubt else ""))
    agree = Check("what the banks were told they paid in equals what the fund-account ledger received")
    for participant in sorted(set(acknowledged) | set(ledger_in)):
        if participant in in_doubt:
            continue
        agree.expect(acknowledged[participant] == ledger_in[participant],
                     f"participant {participant}: acknowledged {format_fen(acknowledged[participant])}, "
                     f"ledger {format_fen(ledger_in[participant])}")
    return [conserved, agree]
