"""The withdrawal aggregate (stream ``withdrawal-{id}``): its plan, its instalments and each
instalment's payments, from instruction to the net paid (or compensated).

Life of one instalment: PayoutInstructed (the gross is asked of the fund account) →
PayoutDebitRecorded (the fund account took it) → PaymentsWithheld (3 % withheld first, A-PAY-7)
→ per payment PayoutMade, or after the last failed attempt PaymentFailed and
TaxWithholdingReversed → PayoutRefundRequested → PayoutCompensated (the money is back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Mapping

from pension_shared.errors import DomainError
from pension_shared.policy import withdrawal_method_changeable

from pension_payout.domain.schedule import Payment, Plan, due_date, split_among_heirs

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


class WithdrawalMethodLocked(DomainError):
    code = "WITHDRAWAL_METHOD_LOCKED"


class NotEligibleForWithdrawal(DomainError):
    code = "NOT_ELIGIBLE_FOR_WITHDRAWAL"


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
        elif name == PAYOUT_INSTRUCTED:
            self.instalments[data["instalment_no"]] = Instalment(
                data["payout_id"], data["instalment_no"], date.fromisoformat(data["due_date"]))
        elif name == PAYOUT_DEBIT_RECORDED:
            instalment = self._instalment(data["payout_id"])
            instalment.gross, instalment.balance_after, instalment.status = data["gross"], data["balance_after"], "debited"
            # The account the money actually came from: after a bank change, the new one.
            self.fund_account_id = data.get("fund_account_id", self.fund_account_id)
            self.bank_code, self.withholding_city = data["bank_code"], data["withholding_city"]
        elif name == PAYOUT_NOT_DEBITED:
            self._instalment(data["payout_id"]).status = "refused"
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
            self._instalment(data["payout_id"]).status = "refunding"
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
        if self.status != "active" or self.in_flight() is not None or self.first_due is None:
            return None
        number = self.next_instalment_no
        due = due_date(self.first_due, number) if self.kind == "withdrawal" else self.first_due
        if due > today:
            return None
        paid_under_plan = sum(1 for n in self.instalments if n >= self.plan_since_instalment)
        basis = {"kind": "all"} if self.kind == "inheritance" else self.plan.basis(paid_under_plan)
        return {
            "withdrawal_id": self.withdrawal_id, "payout_id": f"{self.withdrawal_id}-{number}",
            "instalment_no": number, "due_date": due.isoformat(), "basis": basis,
            "participant_id": self.participant_id, "fund_account_id": self.fund_account_id,
        }

    def withhold(self, payout_id: str, *, gross: int, tax_of, payee: tuple[str, str]) -> dict[str, Any]:  # noqa: ANN001
        """A-PAY-7: the tax is withheld first, per payment (per heir on inheritance)."""
        if self.kind == "inheritance":
            payments = split_among_heirs(payout_id, gross, [h["share"] for h in self.heirs], tax_of)
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
