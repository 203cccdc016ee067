"""The withdrawal aggregate (stream ``withdrawal-{id}``): its plan, its instalments and each
instalment's payments, from instruction to the net paid (or compensated).

Life of one instalment: PayoutInstructed (the gross is asked of the fund account) →
PayoutDebitRecorded (the fund account took it) → PaymentsWithheld (3 % withheld first, A-PAY-7)
→ per payment PayoutMade, or after the last failed attempt PaymentFailed and
TaxWithholdingReversed → PayoutRefundRequested → PayoutCompensated (the money is back).

An inheritance takes the whole account once and splits it among the heirs by share (A-INH-1).
What comes back from a heir's failed payment stays that heir's: the retry asks the fund account
for exactly that, and pays it to that heir only. A retry (after a refund, or after a debit the
fund account refused because it was frozen for a bank change) falls due the business date after
the failure (the next day in Asia/Shanghai), so a bank that keeps failing, or a bank change that
takes days, costs one attempt a day instead of one at every tick of the job. A debit refused
because the account is closed (it is the participant's current account, so there is no other)
ends the withdrawal: there is nothing left to pay."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable, Mapping

from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.errors import DomainError
from pension_shared.policy import withdrawal_method_changeable

from pension_payout.domain.schedule import Payment, Plan, due_date, split_among_heirs, split_owed

WITHDRAWAL_STARTED = "WithdrawalStarted"
WITHDRAWAL_METHOD_CHANGED = "WithdrawalMethodChanged"
PAYOUT_INSTRUCTED = "PayoutInstructed"
PAYOUT_DEBIT_RECORDED = "PayoutDebitRecorded"
PAYOUT_NOT_DEBITED = "PayoutNotDebited"
PAYMENTS_WITHHELD = "PaymentsWithheld"
PAYOUT_MADE = "PayoutMade"
PAYMENT_ATTEMPT_FAILED = "PaymentAttemptFailed"
PAYMENT_FAILED = "PaymentFailed"
TAX_WITHHOLDING_REVERSED = "TaxWithholdingReversed"
PAYOUT_REFUND_REQUESTED = "PayoutRefundRequested"
PAYOUT_COMPENSATED = "PayoutCompensated"
WITHDRAWAL_COMPLETED = "WithdrawalCompleted"

MAX_PAYMENT_ATTEMPTS = 3
ACCOUNT_CLOSED = "closed"


class WithdrawalMethodLocked(DomainError):
    code = "WITHDRAWAL_METHOD_LOCKED"


class NotEligibleForWithdrawal(DomainError):
    """Not heard of as receiving, or heard of as deceased, from the platform (an approval may be
    on its way)."""

    code = "NOT_ELIGIBLE_FOR_WITHDRAWAL"
    rests_on_others = True


def withdrawal_stream(withdrawal_id: str) -> str:
    return f"withdrawal-{withdrawal_id}"


@dataclass
class PaymentState:
    payment: Payment
    payee_bank_code: str
    payee_account_masked: str
    status: str = "withheld"
    attempts: int = 0
    paid_at: str | None = None


@dataclass
class Instalment:
    payout_id: str
    instalment_no: int
    due: date
    gross: int | None = None
    balance_after: int | None = None
    payments: dict[str, PaymentState] = field(default_factory=dict)
    status: str = "instructed"
    for_heirs: dict[int, int] = field(default_factory=dict)
    failed_on: date | None = None


@dataclass
class Withdrawal:
    withdrawal_id: str
    started: bool = False
    participant_id: str = ""
    fund_account_id: str = ""
    bank_code: str = ""
    withholding_city: str = ""
    kind: str = "withdrawal"
    plan: Plan = field(default_factory=lambda: Plan("lump_sum"))
    plan_since_instalment: int = 1
    lump_sum_from: date | None = None
    """The business date a change of method to a lump sum was made: it is paid at once, not on
    the schedule's next date."""
    first_due: date | None = None
    heirs: list[dict[str, Any]] = field(default_factory=list)
    instalments: dict[int, Instalment] = field(default_factory=dict)
    status: str = "none"

    @classmethod
    def from_events(cls, withdrawal_id: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "Withdrawal":
        withdrawal = cls(withdrawal_id)
        for name, data in events:
            withdrawal.apply(name, data)
        return withdrawal

    # -- state ---------------------------------------------------------------------------

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        if name == WITHDRAWAL_STARTED:
            self.started, self.status = True, "active"
            self.participant_id, self.fund_account_id = data["participant_id"], data["fund_account_id"]
            self.bank_code, self.withholding_city, self.kind = data["bank_code"], data["withholding_city"], data["kind"]
            self.plan, self.first_due = Plan.from_data(data["plan"]), date.fromisoformat(data["first_due"])
            self.heirs = list(data.get("heirs") or [])
        elif name == WITHDRAWAL_METHOD_CHANGED:
            self.plan, self.plan_since_instalment = Plan.from_data(data["plan"]), data["from_instalment"]
            self.lump_sum_from = (business_date(parse_rfc3339(data["changed_at"])) if self.plan.method == "lump_sum"
                                  else None)
        elif name == PAYOUT_INSTRUCTED:
            self.instalments[data["instalment_no"]] = Instalment(
                data["payout_id"], data["instalment_no"], date.fromisoformat(data["due_date"]),
                for_heirs={h["heir_no"]: h["gross"] for h in data.get("for_heirs") or []})
        elif name == PAYOUT_DEBIT_RECORDED:
            instalment = self._instalment(data["payout_id"])
            instalment.gross, instalment.balance_after, instalment.status = data["gross"], data["balance_after"], "debited"
            # The account the money actually came from: after a bank change, the new one.
            self.fund_account_id = data.get("fund_account_id", self.fund_account_id)
            self.bank_code, self.withholding_city = data["bank_code"], data["withholding_city"]
        elif name == PAYOUT_NOT_DEBITED:
            instalment = self._instalment(data["payout_id"])
            instalment.status = "refused"
            if "refused_at" in data:
                instalment.failed_on = business_date(parse_rfc3339(data["refused_at"]))
        elif name == PAYMENTS_WITHHELD:
            instalment = self._instalment(data["payout_id"])
            instalment.status = "paying"
            for p in data["payments"]:
                instalment.payments[p["payment_id"]] = PaymentState(
                    Payment(p["payment_id"], p["heir_no"], p["gross"], p["tax"], p["net"]),
                    p["payee_bank_code"], p["payee_account_masked"])
        elif name == PAYOUT_MADE:
            paid = self._payment(data["payout_id"])
            paid.status, paid.paid_at = "paid", data["paid_at"]
        elif name == PAYMENT_ATTEMPT_FAILED:
            self._payment(data["payout_id"]).attempts = data["attempt"]
        elif name == PAYMENT_FAILED:
            self._payment(data["payout_id"]).status = "failed"
        elif name == PAYOUT_REFUND_REQUESTED:
            instalment = self._instalment(data["payout_id"])
            instalment.status = "refunding"
            instalment.failed_on = business_date(parse_rfc3339(data["requested_at"]))
        elif name == PAYOUT_COMPENSATED:
            self._instalment(data["payout_id"]).status = "compensated"
        elif name == WITHDRAWAL_COMPLETED:
            self.status = "completed"

    def _instalment(self, payout_id: str) -> Instalment:
        return next(i for i in self.instalments.values() if i.payout_id == payout_id)

    def _payment(self, payment_id: str) -> PaymentState:
        for instalment in self.instalments.values():
            if payment_id in instalment.payments:
                return instalment.payments[payment_id]
        raise KeyError(payment_id)

    @property
    def next_instalment_no(self) -> int:
        return len(self.instalments) + 1

    def in_flight(self) -> Instalment | None:
        return next((i for i in self.instalments.values()
                     if i.status not in ("refused", "compensated") and not self._settled(i)), None)

    @staticmethod
    def _settled(instalment: Instalment) -> bool:
        return instalment.status == "paying" and all(p.status == "paid" for p in instalment.payments.values())

    def next_due(self) -> date | None:
        """When the next instalment falls due; None while one is in flight or once it has ended.
        A withdrawal follows its monthly schedule (a refused or failed instalment is made up by
        the later ones), except that a change to a lump sum is paid at once (INTERFACES §5: "a
        lump sum empties the account and is paid at once"). An inheritance is due at once. A
        retry of either after a refused debit or a refund is due the business date after that
        failure."""
        if self.status != "active" or self.in_flight() is not None or self.first_due is None:
            return None
        if self.kind == "withdrawal":
            scheduled = due_date(self.first_due, self.next_instalment_no)
            if self.lump_sum_from is None:
                return scheduled
            return min(scheduled, self._at_once(self.lump_sum_from, since=self.plan_since_instalment))
        return self._at_once(self.first_due, since=1)

    def _at_once(self, asked_on: date, *, since: int) -> date:
        """When a payment asked for at once (an inheritance, a change to a lump sum) falls due:
        the day it was asked for, or the business date after the last instalment asked for it
        failed (after its due date for a refusal recorded before refusals carried their time)."""
        last = self.instalments.get(len(self.instalments))
        if last is None or last.instalment_no < since or last.status not in ("refused", "compensated"):
            return asked_on
        return (last.failed_on or last.due) + timedelta(days=1)

    def owed_to_heirs(self) -> dict[int, int]:
        """Per heir, the gross that came back from their failed payments and that no retry has
        taken since: it is theirs alone (A-INH-1)."""
        owed: dict[int, int] = {}
        for instalment in self.instalments.values():
            for p in instalment.payments.values():
                heir_no = p.payment.heir_no
                if heir_no is None:
                    continue
                if instalment.for_heirs:  # a retry: what it took is no longer owed
                    owed[heir_no] = owed.get(heir_no, 0) - p.payment.gross
                if p.status == "failed" and instalment.status == "compensated":
                    owed[heir_no] = owed.get(heir_no, 0) + p.payment.gross
        return {heir_no: gross for heir_no, gross in sorted(owed.items()) if gross > 0}

    # -- decisions -----------------------------------------------------------------------

    def start(self, *, participant_id: str, fund_account_id: str, bank_code: str, withholding_city: str, plan: Plan,
              first_due: date, kind: str, started_at: str, heirs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        plan.validate()
        return {
            "withdrawal_id": self.withdrawal_id, "participant_id": participant_id, "fund_account_id": fund_account_id,
            "bank_code": bank_code, "withholding_city": withholding_city, "kind": kind, "plan": plan.as_data(),
            "first_due": first_due.isoformat(), "started_at": started_at, "heirs": heirs or [],
        }

    def change_method(self, plan: Plan, *, on: date, changed_at: str) -> dict[str, Any]:
        if self.status != "active":
            raise DomainError(f"the withdrawal is {self.status}; its method cannot change")
        if not withdrawal_method_changeable(on):
            raise WithdrawalMethodLocked("the withdrawal method may not be changed before 2025-09-01 (A-PAY-2)")
        plan.validate()
        flight = self.in_flight()
        from_instalment = self.next_instalment_no if flight is None else flight.instalment_no + 1
        return {"withdrawal_id": self.withdrawal_id, "plan": plan.as_data(), "from_instalment": from_instalment,
                "changed_at": changed_at}

    def instruct_due(self, *, today: date) -> dict[str, Any] | None:
        """The next instalment when it is due and the previous one has settled; None otherwise.
        Its id is fixed by its number, so the same instalment is never instructed twice."""
        due = self.next_due()
        if due is None or due > today:
            return None
        number = self.next_instalment_no
        instruction: dict[str, Any] = {
            "withdrawal_id": self.withdrawal_id, "payout_id": f"{self.withdrawal_id}-{number}",
            "instalment_no": number, "due_date": due.isoformat(),
            "participant_id": self.participant_id, "fund_account_id": self.fund_account_id,
        }
        owed = self.owed_to_heirs() if self.kind == "inheritance" else {}
        if owed:
            instruction["basis"] = {"kind": "fixed", "amount": sum(owed.values())}
            instruction["for_heirs"] = [{"heir_no": heir_no, "gross": gross} for heir_no, gross in owed.items()]
        elif self.kind == "inheritance":
            instruction["basis"] = {"kind": "all"}
        else:
            instruction["basis"] = self.plan.basis(sum(1 for n in self.instalments if n >= self.plan_since_instalment))
        return instruction

    def not_debited(self, payout_id: str, *, reason: str, account_status: str | None,
                    refused_at: str) -> list[tuple[str, dict[str, Any]]]:
        """The fund account refused the instalment's debit. Frozen (a bank change): it settles
        without money and is tried again later. Closed: the participant's current account holds
        nothing, so the withdrawal ends."""
        events: list[tuple[str, dict[str, Any]]] = [(PAYOUT_NOT_DEBITED, {
            "withdrawal_id": self.withdrawal_id, "payout_id": payout_id, "reason": reason, "refused_at": refused_at,
        })]
        if account_status == ACCOUNT_CLOSED and self.status == "active":
            events.append((WITHDRAWAL_COMPLETED, {"withdrawal_id": self.withdrawal_id, "reason": "nothing_to_pay"}))
        return events

    def withhold(self, payout_id: str, *, gross: int, tax_of, payee: tuple[str, str]) -> dict[str, Any]:  # noqa: ANN001
        """A-PAY-7: the tax is withheld first, per payment (per heir on inheritance)."""
        if self.kind == "inheritance":
            owed = self._instalment(payout_id).for_heirs  # a retry pays only those it was asked for
            payments = (split_owed(payout_id, gross, owed, tax_of) if owed
                        else split_among_heirs(payout_id, gross, [h["share"] for h in self.heirs], tax_of))
            payees = {h["heir_no"]: (h["payee_bank_code"], h["payee_account_masked"]) for h in self.heirs}
        else:
            tax = tax_of(gross)
            payments = [Payment(payout_id, None, gross, tax, gross - tax)]
            payees = {None: payee}
        return {"withdrawal_id": self.withdrawal_id, "payout_id": payout_id, "payments": [
            {"payment_id": p.payment_id, "heir_no": p.heir_no, "gross": p.gross, "tax": p.tax, "net": p.net,
             "payee_bank_code": payees[p.heir_no][0], "payee_account_masked": payees[p.heir_no][1]}
            for p in payments if p.gross > 0
        ]}

    def payments_due(self) -> list[PaymentState]:
        return [p for i in self.instalments.values() for p in i.payments.values() if p.status == "withheld"]

    def instalment_of(self, payment_id: str) -> Instalment:
        return next(i for i in self.instalments.values() if payment_id in i.payments)
