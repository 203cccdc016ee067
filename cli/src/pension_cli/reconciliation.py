"""Cross-service reconciliation, from the four ledgers alone.

Contributions, per participant and year: what the fund account received (net of reversals) must
equal what the information platform recorded and what the tax service vouched for (vouchers
issued minus voided), and every contribution must appear in each ledger once, with the same
amount. Payouts: each payment's tax is 3 % half up of its gross under the policy of its date, and
the tax service withheld exactly that for the same payment; each instalment the fund account
debited equals the sum of the payments the payout service withheld for it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Mapping, Sequence

from pension_cli.ledgers import named
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.money import format_fen
from pension_shared.policy import policy_on


@dataclass(frozen=True)
class Break:
    area: str
    """``contributions`` or ``payouts``."""
    subject: str
    """What does not reconcile: ``participant P… year 2025``, ``payout WI…-1``."""
    reason: str
    event_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"area": self.area, "subject": self.subject, "reason": self.reason, "event_ids": list(self.event_ids)}


@dataclass
class Reconciliation:
    participant_years: int = 0
    contributions: int = 0
    payments: int = 0
    instalments: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.breaks

    def as_dict(self, as_of: date | None = None) -> dict[str, Any]:
        return {
            "as_of": as_of.isoformat() if as_of else None, "balanced": self.balanced,
            "participant_years": self.participant_years, "contributions": self.contributions,
            "payments": self.payments, "instalments": self.instalments,
            "breaks": [b.as_dict() for b in self.breaks],
        }


@dataclass
class _Entry:
    participant_id: str
    year: int
    amount: int
    event_id: str


def reconcile(ledgers: Mapping[str, Sequence[Envelope]]) -> Reconciliation:
    result = Reconciliation()
    _contributions(ledgers, result)
    _payouts(ledgers, result)
    return result


def _by(events: Iterable[Envelope], name: str, key: str) -> dict[str, list[Envelope]]:
    found: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        if named(e) == name:
            found[e.data[key]].append(e)
    return found


def _entry(e: Envelope, participant_key: str = "participant_id") -> _Entry:
    return _Entry(e.data[participant_key], e.data["year"], e.data["amount"], e.id)


def _contributions(ledgers: Mapping[str, Sequence[Envelope]], result: Reconciliation) -> None:
    received = _by(ledgers["fund-account"], "ContributionReceived", "contribution_id")
    reversed_ = _by(ledgers["fund-account"], "ContributionReversed", "contribution_id")
    recorded = _by(ledgers["account"], "ContributionRecorded", "contribution_id")
    issued = _by(ledgers["tax"], "DeductionVoucherIssued", "contribution_id")
    voided = _by(ledgers["tax"], "DeductionVoucherVoided", "contribution_id")

    totals: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: {"fund-account": 0, "platform": 0, "vouchers": 0})
    involved: dict[tuple[str, int], list[str]] = defaultdict(list)
    problems: dict[tuple[str, int], list[str]] = defaultdict(list)

    def add(where: str, events: Iterable[Envelope], sign: int = 1) -> None:
        for e in events:
            entry = _entry(e)
            key = (entry.participant_id, entry.year)
            totals[key][where] += sign * entry.amount
            involved[key].append(e.id)

    for contribution_id in sorted(set(received) | set(recorded) | set(issued)):
        result.contributions += 1
        got, rec, vou = received.get(contribution_id, []), recorded.get(contribution_id, []), issued.get(contribution_id, [])
        add("fund-account", got)
        add("fund-account", reversed_.get(contribution_id, []), -1)
        add("platform", rec)
        add("vouchers", vou)
        add("vouchers", voided.get(contribution_id, []), -1)
        for problem, events in _contribution_problems(contribution_id, got, rec, vou, reversed_.get(contribution_id, []),
                                                      voided.get(contribution_id, [])):
            key = (events[0].data["participant_id"], events[0].data["year"])
            problems[key].append(problem)
    for key in sorted(totals):
        result.participant_years += 1
        figures = totals[key]
        if len(set(figures.values())) == 1 and not problems.get(key):
            continue
        shown = ", ".join(f"{where} {format_fen(amount)}" for where, amount in figures.items())
        detail = "; ".join(problems.get(key, [])) or "totals differ"
        result.breaks.append(Break("contributions", f"participant {key[0]} year {key[1]}",
                                   f"{shown}: {detail}", tuple(involved[key])))


def _contribution_problems(
    contribution_id: str, got: list[Envelope], rec: list[Envelope], vou: list[Envelope],
    reversals: list[Envelope], voids: list[Envelope],
) -> list[tuple[str, list[Envelope]]]:
    problems: list[tuple[str, list[Envelope]]] = []
    cited = f"contribution {contribution_id}"
    if not got:
        if rec:
            problems.append((f"{cited} recorded on the platform ({_ids(rec)}) but never received by the fund account", rec))
        if vou:
            problems.append((f"{cited} has a voucher ({_ids(vou)}) but was never received by the fund account", vou))
        return problems
    amount = got[0].data["amount"]
    if len(got) > 1:
        problems.append((f"{cited} received {len(got)} times ({_ids(got)})", got))
    if not rec:
        problems.append((f"{cited} ({_ids(got)}) not recorded on the platform", got))
    elif len(rec) > 1 or rec[0].data["amount"] != amount:
        problems.append((f"{cited} ({_ids(got)}) recorded on the platform as "
                         f"{' + '.join(format_fen(e.data['amount']) for e in rec)} ({_ids(rec)})", got))
    if not vou:
        problems.append((f"{cited} ({_ids(got)}) has no deduction voucher", got))
    elif len(vou) > 1 or vou[0].data["amount"] != amount:
        problems.append((f"{cited} ({_ids(got)}) vouched as "
                         f"{' + '.join(format_fen(e.data['amount']) for e in vou)} ({_ids(vou)})", got))
    if reversals and vou and not voids:
        problems.append((f"{cited} reversed ({_ids(reversals)}) but its voucher was not voided", got))
    if voids and not reversals:
        problems.append((f"{cited} voucher voided ({_ids(voids)}) but the contribution was not reversed", got))
    return problems


def _payouts(ledgers: Mapping[str, Sequence[Envelope]], result: Reconciliation) -> None:
    made = _by(ledgers["payout"], "PayoutMade", "payout_id")
    withheld_by_tax = _by(ledgers["tax"], "WithdrawalTaxWithheld", "payout_id")
    withheld_by_payout = _by(ledgers["payout"], "PaymentsWithheld", "payout_id")
    debited = _by(ledgers["fund-account"], "PayoutDebited", "payout_id")

    for payment_id in sorted(set(made) | set(withheld_by_tax)):
        result.payments += 1
        subject = f"payment {payment_id}"
        payments, tax_events = made.get(payment_id, []), withheld_by_tax.get(payment_id, [])
        if not payments:
            result.breaks.append(Break("payouts", subject, "tax withheld by the tax service but no payout was made",
                                       tuple(e.id for e in tax_events)))
            continue
        payment = payments[0]
        gross, tax = payment.data["gross"], payment.data["tax"]
        expected = policy_on(business_date(parse_rfc3339(payment.data["paid_at"]))).withdrawal_tax(gross)
        if tax != expected:
            result.breaks.append(Break("payouts", subject,
                                       f"tax {format_fen(tax)} on gross {format_fen(gross)} should be {format_fen(expected)}",
                                       (payment.id,)))
        if not tax_events:
            result.breaks.append(Break("payouts", subject, "paid, but the tax service has not withheld for it", (payment.id,)))
        elif len(tax_events) > 1 or tax_events[0].data["tax"] != tax:
            amounts = " + ".join(format_fen(e.data["tax"]) for e in tax_events)
            result.breaks.append(Break("payouts", subject,
                                       f"the payout service withheld {format_fen(tax)}, the tax service {amounts}",
                                       (payment.id, *(e.id for e in tax_events))))

    for payout_id in sorted(set(debited) | set(withheld_by_payout)):
        result.instalments += 1
        subject = f"instalment {payout_id}"
        debits, withholdings = debited.get(payout_id, []), withheld_by_payout.get(payout_id, [])
        ids = tuple(e.id for e in (*debits, *withholdings))
        debited_gross = sum(e.data["gross"] for e in debits)
        paid_gross = sum(p["gross"] for e in withholdings for p in e.data["payments"])
        if not debits:
            result.breaks.append(Break("payouts", subject, f"payments of {format_fen(paid_gross)} with no fund-account debit", ids))
        elif not withholdings and debited_gross:
            result.breaks.append(Break("payouts", subject,
                                       f"the fund account debited {format_fen(debited_gross)} but the payout service has no payments for it", ids))
        elif withholdings and debited_gross != paid_gross:
            result.breaks.append(Break("payouts", subject,
                                       f"the fund account debited {format_fen(debited_gross)}, the payments total {format_fen(paid_gross)}", ids))


def _ids(events: Sequence[Envelope]) -> str:
    return ", ".join(f"event {e.id}" for e in events)
