"""The payout service's work on the business clock.

``DuePayouts`` instructs each instalment once it is due and the previous one has settled; its
payout id is fixed by its number, so catching up after downtime never instructs one twice.
``Payments`` pays the net of each withheld payment through the payment adapter, outside any
database transaction, then records the outcome; a crash in between pays again under the same
payment id, which the bank deduplicates. After the last failed attempt the withholding is
reversed and the gross is asked back into the fund account."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from pension_payout.adapters.payments import PaymentAdapter, PaymentRefused
from pension_payout.adapters.tables import withdrawals
from pension_payout.application.policies import load_payee, load_withdrawal
from pension_payout.domain.withdrawal import (
    MAX_PAYMENT_ATTEMPTS, PAYMENT_ATTEMPT_FAILED, PAYMENT_FAILED, PAYOUT_INSTRUCTED, PAYOUT_MADE,
    PAYOUT_REFUND_REQUESTED, TAX_WITHHOLDING_REVERSED, WITHDRAWAL_COMPLETED, PaymentState, Withdrawal,
)
from pension_shared.clock import business_date, rfc3339
from pension_shared.ledger import Metadata, NewEvent
from pension_shared.pii import PersonalDataKey
from pension_shared.runtime import ServiceContext

log = logging.getLogger(__name__)


class DuePayouts:
    name = "due-payouts"

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def run_once(self) -> int:
        today = business_date(self._ctx.clock.now())
        with self._ctx.engine.connect() as conn:
            due = conn.execute(sa.select(withdrawals.c.withdrawal_id).where(
                withdrawals.c.status == "active", withdrawals.c.next_due <= today)).scalars().all()
            conn.rollback()
        instructed = 0
        for withdrawal_id in due:
            with self._ctx.engine.begin() as conn:
                stream, withdrawal = load_withdrawal(self._ctx.store, conn, withdrawal_id)
                instruction = withdrawal.instruct_due(today=today)
                if instruction is None:
                    continue
                meta = Metadata(time=rfc3339(self._ctx.clock.now()))
                self._ctx.store.append(conn, stream.stream_id, stream.version, [
                    NewEvent(PAYOUT_INSTRUCTED, instruction, subject=withdrawal.participant_id)], meta)
                instructed += 1
        return instructed


class Payments:
    name = "payments"

    def __init__(self, ctx: ServiceContext, adapter: PaymentAdapter) -> None:
        self._ctx = ctx
        self._adapter = adapter
        self._pii = PersonalDataKey(ctx.settings.pii_key)

    def run_once(self) -> int:
        with self._ctx.engine.connect() as conn:
            waiting = conn.execute(sa.select(withdrawals.c.withdrawal_id).where(
                withdrawals.c.awaiting_payment.is_(True))).scalars().all()
            conn.rollback()
        done = 0
        for withdrawal_id in waiting:
            with self._ctx.engine.connect() as conn:
                _, withdrawal = load_withdrawal(self._ctx.store, conn, withdrawal_id)
                _, payee = load_payee(self._ctx.store, conn, withdrawal.participant_id)
                conn.rollback()
            for payment in withdrawal.payments_due():
                self._pay(withdrawal, payment, payee)
                done += 1
        return done

    def _destination(self, withdrawal: Withdrawal, payment: PaymentState, payee) -> tuple[str, str]:  # noqa: ANN001
        if payment.payment.heir_no is None:
            sealed = self._pii.unseal(payee.payee_sealed)
            return sealed["bank_code"], sealed["account_number"]
        heir = self._pii.unseal(payee.heirs_sealed)["heirs"][payment.payment.heir_no - 1]
        return heir["bank_code"], heir["account_number"]

    def _pay(self, withdrawal: Withdrawal, payment: PaymentState, payee) -> None:  # noqa: ANN001
        bank_code, account_number = self._destination(withdrawal, payment, payee)
        try:
            self._adapter.pay(payment_id=payment.payment.payment_id, bank_code=bank_code,
                              account_number=account_number, amount=payment.payment.net)
            outcome: str | None = None
        except PaymentRefused as refused:
            outcome = str(refused)
        with self._ctx.engine.begin() as conn:
            stream, current = load_withdrawal(self._ctx.store, conn, withdrawal.withdrawal_id)
            state = current._payment(payment.payment.payment_id)
            if state.status != "withheld":
                return
            now = rfc3339(self._ctx.clock.now())
            events = self._paid(current, state, now) if outcome is None else self._failed(current, state, outcome, now)
            subject = current.participant_id
            for name, data in events:
                current.apply(name, data)
            events += self._settle(current, state, now)
            self._ctx.store.append(conn, stream.stream_id, stream.version,
                                   [NewEvent(n, d, subject=subject) for n, d in events], Metadata(time=now))

    @staticmethod
    def _paid(withdrawal: Withdrawal, state: PaymentState, now: str) -> list[tuple[str, dict]]:
        p = state.payment
        return [(PAYOUT_MADE, {
            "withdrawal_id": withdrawal.withdrawal_id, "payout_id": p.payment_id, "participant_id": withdrawal.participant_id,
            "fund_account_id": withdrawal.fund_account_id, "bank_code": withdrawal.bank_code,
            "withholding_city": withdrawal.withholding_city, "gross": p.gross, "tax": p.tax, "net": p.net,
            "paid_at": now, "kind": withdrawal.kind, "heir_no": p.heir_no,
            "payee": {"bank_code": state.payee_bank_code, "account_number_masked": state.payee_account_masked},
        })]

    @staticmethod
    def _failed(withdrawal: Withdrawal, state: PaymentState, error: str, now: str) -> list[tuple[str, dict]]:
        attempt = state.attempts + 1
        p = state.payment
        events: list[tuple[str, dict]] = [(PAYMENT_ATTEMPT_FAILED, {
            "withdrawal_id": withdrawal.withdrawal_id, "payout_id": p.payment_id, "attempt": attempt, "error": error,
            "failed_at": now})]
        if attempt >= MAX_PAYMENT_ATTEMPTS:
            events += [
                (PAYMENT_FAILED, {"withdrawal_id": withdrawal.withdrawal_id, "payout_id": p.payment_id,
                                  "attempts": attempt, "error": error}),
                (TAX_WITHHOLDING_REVERSED, {"withdrawal_id": withdrawal.withdrawal_id, "payout_id": p.payment_id,
                                            "gross": p.gross, "tax": p.tax, "reversed_at": now}),
            ]
        return events

    @staticmethod
    def _settle(withdrawal: Withdrawal, state: PaymentState, now: str) -> list[tuple[str, dict]]:
        """Once every payment of the instalment has an outcome: ask back what was not paid, or
        complete the withdrawal when the fund account is empty."""
        instalment = withdrawal.instalment_of(state.payment.payment_id)
        statuses = [p.status for p in instalment.payments.values()]
        if "withheld" in statuses:
            return []
        failed = sum(p.payment.gross for p in instalment.payments.values() if p.status == "failed")
        if failed:
            return [(PAYOUT_REFUND_REQUESTED, {
                "withdrawal_id": withdrawal.withdrawal_id, "payout_id": instalment.payout_id,
                "participant_id": withdrawal.participant_id, "fund_account_id": withdrawal.fund_account_id,
                "amount": failed, "requested_at": now})]
        if instalment.balance_after == 0:
            return [(WITHDRAWAL_COMPLETED, {"withdrawal_id": withdrawal.withdrawal_id, "reason": "exhausted",
                                            "fund_account_id": withdrawal.fund_account_id})]
        return []
