"""The bank-payment adapters that pay the net to the payee's account.

Production: an httpx client of the bank-payment endpoint, each payment sent with its payment id
as Idempotency-Key, so a retry after a crash never pays twice. Embedded default: a recording
adapter that keeps the payments in a table (same idempotency), and refuses payments to banks an
operator marked as failing, to exercise the compensation path."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pension_payout.adapters.tables import failing_payee_banks, recorded_payments
from pension_shared.money import format_fen
from pension_shared.pii import mask_account_number


class PaymentRefused(Exception):
    """The bank did not pay (this attempt)."""


class PaymentAdapter(Protocol):
    def pay(self, *, payment_id: str, bank_code: str, account_number: str, amount: int) -> None:
        """Pay ``amount`` fen, exactly once per ``payment_id``; raise PaymentRefused otherwise."""


class HttpPaymentAdapter:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def pay(self, *, payment_id: str, bank_code: str, account_number: str, amount: int) -> None:
        try:
            response = self._client.post(
                "/payments",
                json={"payment_id": payment_id, "bank_code": bank_code, "account_number": account_number,
                      "amount": format_fen(amount), "currency": "CNY"},
                headers={"Idempotency-Key": payment_id},
            )
        except httpx.HTTPError as exc:
            raise PaymentRefused(f"the bank-payment endpoint did not answer ({type(exc).__name__})") from exc
        if response.status_code not in (200, 201):
            raise PaymentRefused(f"the bank-payment endpoint answered {response.status_code}")


class RecordingPaymentAdapter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def pay(self, *, payment_id: str, bank_code: str, account_number: str, amount: int) -> None:
        with self._engine.begin() as conn:
            failing = conn.execute(
                sa.select(failing_payee_banks.c.bank_code).where(failing_payee_banks.c.bank_code == bank_code)
            ).first()
            if failing is not None:
                raise PaymentRefused(f"the bank {bank_code} refused the transfer")
            try:
                with conn.begin_nested():
                    conn.execute(recorded_payments.insert().values(
                        payment_id=payment_id, bank_code=bank_code, account_number_masked=mask_account_number(account_number),
                        amount=amount, paid_at=datetime.now(timezone.utc),
                    ))
            except IntegrityError:
                return  # already paid: the same payment id is never paid twice

    def set_failing(self, bank_code: str, failing: bool) -> None:
        with self._engine.begin() as conn:
            conn.execute(failing_payee_banks.delete().where(failing_payee_banks.c.bank_code == bank_code))
            if failing:
                conn.execute(failing_payee_banks.insert().values(bank_code=bank_code))

    def payments(self) -> list[dict]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(recorded_payments).order_by(recorded_payments.c.paid_at)).all()
        return [{"payment_id": r.payment_id, "bank_code": r.bank_code, "account_number": r.account_number_masked,
                 "amount": format_fen(r.amount)} for r in rows]
