"""Projections of the payout service's own events."""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import orjson
from sqlalchemy.engine import Connection

from pension_payout.adapters.tables import payees, withdrawals
from pension_payout.domain.participants import PAYEE_REGISTERED
from pension_payout.domain.withdrawal import (
    PAYMENT_ATTEMPT_FAILED, PAYMENT_FAILED, PAYMENTS_WITHHELD, PAYOUT_COMPENSATED, PAYOUT_DEBIT_RECORDED, PAYOUT_INSTRUCTED,
    PAYOUT_MADE, PAYOUT_NOT_DEBITED, PAYOUT_REFUND_REQUESTED, TAX_WITHHOLDING_REVERSED, WITHDRAWAL_COMPLETED,
    WITHDRAWAL_METHOD_CHANGED, WITHDRAWAL_STARTED, Withdrawal, withdrawal_stream,
)
from pension_shared.bulk_rebuild import Load, SetBased
from pension_shared.envelope import Envelope, EventType, event_type
from pension_shared.ledger import EventStore
from pension_shared.money import format_fen
from pension_shared.projection_batch import insert_many, upsert_many


class PayeeRegisteredProjection:
    name = "payees"
    tables = (payees,)
    set_based = SetBased(reads=frozenset({event_type("payout", PAYEE_REGISTERED, 1)}), steps=(Load(payees, f"""
        SELECT data_jsonb ->> 'participant_id', data_jsonb ->> 'bank_code', data_jsonb ->> 'account_number_masked',
               data_jsonb ->> 'payee_sealed'
        FROM events WHERE type = '{event_type("payout", PAYEE_REGISTERED, 1)}'
    """),))

    def apply(self, conn: Connection, event: Envelope) -> None:
        self.apply_batch(conn, (event,))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        insert_many(conn, payees, [{c.name: e.data[c.name] for c in payees.columns}
                                   for e in batch if e.event_type.name == PAYEE_REGISTERED])


WITHDRAWAL_EVENT_TYPES = frozenset(event_type("payout", name, 1) for name in (
    WITHDRAWAL_STARTED, WITHDRAWAL_METHOD_CHANGED, PAYOUT_INSTRUCTED, PAYOUT_DEBIT_RECORDED, PAYOUT_NOT_DEBITED,
    PAYMENTS_WITHHELD, PAYOUT_MADE, PAYMENT_ATTEMPT_FAILED, PAYMENT_FAILED, TAX_WITHHOLDING_REVERSED,
    PAYOUT_REFUND_REQUESTED, PAYOUT_COMPENSATED, WITHDRAWAL_COMPLETED,
))

_WITHDRAWAL_STREAMS = """
    SELECT stream_id, type, data FROM events WHERE left(stream_id, 11) = 'withdrawal-'
    ORDER BY stream_id COLLATE "C", sequence
"""


def _withdrawals_from_their_streams(conn: Connection) -> Iterator[dict]:
    """Each withdrawal's row folded once, by the domain, from its whole stream as stored."""
    names: dict[str, str] = {}
    for stream_id, stream in itertools.groupby(conn.exec_driver_sql(_WITHDRAWAL_STREAMS), key=lambda row: row[0]):
        withdrawal_id = stream_id[len("withdrawal-"):]
        folded = Withdrawal.from_events(withdrawal_id, (
            (names.get(type_) or names.setdefault(type_, EventType.parse(type_).name), orjson.loads(data))
            for _, type_, data in stream
        ))
        yield {"withdrawal_id": withdrawal_id, **_row_of(folded)}


def _row_of(withdrawal: Withdrawal) -> dict:
    return {
        "participant_id": withdrawal.participant_id, "bank_code": withdrawal.bank_code,
        "status": withdrawal.status, "next_due": withdrawal.next_due(),
        "awaiting_payment": bool(withdrawal.payments_due()), "view": orjson.dumps(render(withdrawal)).decode(),
    }


class WithdrawalsProjection:
    """One row per withdrawal with what the jobs need (is an instalment due, is a payment
    waiting) and the document GET /v1/withdrawals/{id} returns."""

    name = "withdrawals"
    tables = (withdrawals,)
    set_based = SetBased(reads=WITHDRAWAL_EVENT_TYPES, steps=(Load(withdrawals, _withdrawals_from_their_streams),))

    def __init__(self) -> None:
        self._reader = EventStore(service="payout", topic="pension.payout")

    def apply(self, conn: Connection, event: Envelope) -> None:
        if not event.streamid.startswith("withdrawal-"):
            return
        withdrawal_id = event.streamid[len("withdrawal-"):]
        row = self._row(conn, withdrawal_id, event.sequence)
        updated = conn.execute(withdrawals.update().where(withdrawals.c.withdrawal_id == withdrawal_id).values(**row))
        if updated.rowcount == 0:
            conn.execute(withdrawals.insert().values(withdrawal_id=withdrawal_id, **row))

    def apply_batch(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Each event rewrites its withdrawal's whole row: the row after the last event of the
        batch is the one that stays, so each withdrawal is read and written once."""
        last: dict[str, int] = {}
        for event in batch:
            if event.streamid.startswith("withdrawal-"):
                last[event.streamid[len("withdrawal-"):]] = event.sequence
        upsert_many(conn, withdrawals, [{"withdrawal_id": withdrawal_id, **self._row(conn, withdrawal_id, sequence)}
                                        for withdrawal_id, sequence in last.items()])

    def _row(self, conn: Connection, withdrawal_id: str, sequence: int) -> dict:
        """The withdrawal's row as of its event ``sequence``."""
        stream = [e for e in self._reader.read_stream(conn, withdrawal_stream(withdrawal_id), limit=100_000)
                  if e.sequence <= sequence]
        return _row_of(Withdrawal.from_events(withdrawal_id, ((e.event_type.name, e.data) for e in stream)))


def render(withdrawal: Withdrawal) -> dict:
    plan = withdrawal.plan
    return {
        "withdrawal_id": withdrawal.withdrawal_id,
        "participant_id": withdrawal.participant_id,
        "kind": withdrawal.kind,
        "method": plan.method,
        "months": plan.months,
        "monthly_amount": format_fen(plan.monthly_amount) if plan.monthly_amount is not None else None,
        "installments": plan.installments,
        "status": withdrawal.status,
        "schedule": {
            "first_due": withdrawal.first_due.isoformat() if withdrawal.first_due else None,
            "next_due": (d.isoformat() if (d := withdrawal.next_due()) else None),
            "instalments_instructed": len(withdrawal.instalments),
        },
        "payouts": [
            {
                "payout_id": p.payment.payment_id, "instalment_no": i.instalment_no, "heir_no": p.payment.heir_no,
                "gross": format_fen(p.payment.gross), "tax": format_fen(p.payment.tax), "net": format_fen(p.payment.net),
                "payee_account": {"bank_code": p.payee_bank_code, "account_number": p.payee_account_masked},
                "status": _payment_status(i.status, p.status), "attempts": p.attempts,
                "paid_at": p.paid_at,
            }
            for i in sorted(withdrawal.instalments.values(), key=lambda i: i.instalment_no)
            for p in i.payments.values()
        ],
    }


def _payment_status(instalment_status: str, payment_status: str) -> str:
    if payment_status == "failed":
        return "compensated" if instalment_status == "compensated" else "failed"
    return {"withheld": "pending"}.get(payment_status, payment_status)
