"""An inheritance whose heir's bank fails, and withdrawals on an account already closed: given
events, when the withdrawal decides, then the events it records (A-INH-1, B-2)."""

from datetime import date

from pension_payout.application.policies import _refused_account_status
from pension_payout.domain.schedule import Plan
from pension_payout.domain.withdrawal import (
    PAYMENT_FAILED, PAYMENTS_WITHHELD, PAYOUT_COMPENSATED, PAYOUT_DEBIT_RECORDED, PAYOUT_INSTRUCTED, PAYOUT_MADE,
    PAYOUT_NOT_DEBITED, PAYOUT_REFUND_REQUESTED, WITHDRAWAL_COMPLETED, WITHDRAWAL_STARTED, Withdrawal,
)
from pension_shared.policy import policy_on

TAX = policy_on(date(2025, 10, 1)).withdrawal_tax
DAY = date(2025, 10, 1)
HEIRS = [{"heir_no": n, "share": "0.5", "payee_bank_code": bank, "payee_account_masked": f"****{n}"}
         for n, bank in ((1, "ABC"), (2, "BOC"))]


def _started(kind: str = "inheritance", plan: Plan = Plan("lump_sum")) -> Withdrawal:
    w = Withdrawal("WI1")
    w.apply(WITHDRAWAL_STARTED, w.start(participant_id="P1", fund_account_id="FA1", bank_code="ICBC",
                                        withholding_city="410100", plan=plan, first_due=DAY, kind=kind,
                                        started_at="2025-10-01T10:00:00+08:00", heirs=HEIRS if kind == "inheritance" else None))
    return w


def _instalment(w: Withdrawal, today: date, *, balance: int, failing: set[int], failed_at: str) -> tuple[dict, dict]:
    """Instruct what is due, debit it from ``balance``, pay every heir whose bank works and
    compensate the others; the instruction and what was withheld."""
    instruction = w.instruct_due(today=today)
    assert instruction is not None
    w.apply(PAYOUT_INSTRUCTED, instruction)
    basis = instruction["basis"]
    gross = balance if basis["kind"] == "all" else min(basis["amount"], balance)
    payout_id = instruction["payout_id"]
    w.apply(PAYOUT_DEBIT_RECORDED, {"payout_id": payout_id, "gross": gross, "balance_after": balance - gross,
                                    "bank_code": "ICBC", "withholding_city": "410100"})
    withheld = w.withhold(payout_id, gross=gross, tax_of=TAX, payee=("ICBC", "x"))
    w.apply(PAYMENTS_WITHHELD, withheld)
    failed = 0
    for p in withheld["payments"]:
        if p["heir_no"] in failing:
            w.apply(PAYMENT_FAILED, {"payout_id": p["payment_id"], "attempts": 3, "error": "bank down"})
            failed += p["gross"]
        else:
            w.apply(PAYOUT_MADE, {"payout_id": p["payment_id"], "paid_at": failed_at})
    if failed:
        w.apply(PAYOUT_REFUND_REQUESTED, {"payout_id": payout_id, "amount": failed, "requested_at": failed_at})
        w.apply(PAYOUT_COMPENSATED, {"payout_id": payout_id, "amount": failed})
    return instruction, withheld


def _paid(withheld: dict) -> list[tuple[int, int, int]]:
    return [(p["heir_no"], p["gross"], p["tax"]) for p in withheld["payments"]]


def test_the_money_back_from_a_heirs_failed_payment_is_asked_for_that_heir_only():
    w = _started()
    _instalment(w, DAY, balance=100_000, failing={1}, failed_at="2025-10-01T10:00:05+08:00")

    assert w.owed_to_heirs() == {1: 50_000}
    retry = w.instruct_due(today=date(2025, 10, 2))
    assert retry["basis"] == {"kind": "fixed", "amount": 50_000}
    assert retry["for_heirs"] == [{"heir_no": 1, "gross": 50_000}]


def test_a_retry_pays_the_heir_whose_payment_failed_and_nobody_else():
    w = _started()
    _instalment(w, DAY, balance=100_000, failing={1}, failed_at="2025-10-01T10:00:05+08:00")

    _, withheld = _instalment(w, date(2025, 10, 2), balance=50_000, failing=set(), failed_at="2025-10-02T10:00:05+08:00")

    assert _paid(withheld) == [(1, 50_000, 1_500)]
    assert w.owed_to_heirs() == {}


def test_each_heir_receives_exactly_their_share_however_often_a_bank_fails():
    w = _started()
    _instalment(w, DAY, balance=100_001, failing={1}, failed_at="2025-10-01T10:00:05+08:00")
    balance = 50_001
    for day in (2, 3, 4):
        _, withheld = _instalment(w, date(2025, 10, day), balance=balance, failing={1},
                                  failed_at=f"2025-10-0{day}T10:00:05+08:00")
        assert _paid(withheld) == [(1, 50_001, 1_500)], "the refund is never split with the other heir"
    _instalment(w, date(2025, 10, 5), balance=balance, failing=set(), failed_at="2025-10-05T10:00:05+08:00")

    paid = {}
    for instalment in w.instalments.values():
        for p in instalment.payments.values():
            if p.status == "paid":
                paid[p.payment.heir_no] = paid.get(p.payment.heir_no, 0) + p.payment.gross
    assert paid == {1: 50_001, 2: 50_000}
    assert w.owed_to_heirs() == {}


def test_a_failed_heir_is_tried_again_the_next_business_date_not_at_every_tick():
    w = _started()
    _instalment(w, DAY, balance=100_000, failing={1}, failed_at="2025-10-01T23:30:00+08:00")

    assert w.instruct_due(today=DAY) is None
    assert w.next_due() == date(2025, 10, 2)


def test_the_failure_date_is_the_business_date_in_shanghai():
    w = _started()
    _instalment(w, DAY, balance=100_000, failing={1}, failed_at="2025-10-01T16:30:00Z")  # 00:30 on the 2nd in Shanghai

    assert w.next_due() == date(2025, 10, 3)


def test_when_every_heir_fails_each_gets_their_own_part_back_in_the_retry():
    w = _started()
    _instalment(w, DAY, balance=100_001, failing={1, 2}, failed_at="2025-10-01T10:00:05+08:00")
    assert w.owed_to_heirs() == {1: 50_001, 2: 50_000}

    _, withheld = _instalment(w, date(2025, 10, 2), balance=100_001, failing={2},
                              failed_at="2025-10-02T10:00:05+08:00")
    assert _paid(withheld) == [(1, 50_001, 1_500), (2, 50_000, 1_500)]
    assert w.owed_to_heirs() == {2: 50_000}


def test_a_retry_refused_while_the_account_is_frozen_still_owes_the_heir_and_waits_a_day():
    w = _started()
    _instalment(w, DAY, balance=100_000, failing={1}, failed_at="2025-10-01T10:00:05+08:00")
    retry = w.instruct_due(today=date(2025, 10, 2))
    w.apply(PAYOUT_INSTRUCTED, retry)

    for name, data in w.not_debited(retry["payout_id"], reason="the fund account is frozen", account_status="frozen",
                                    refused_at="2025-10-02T10:00:01+08:00"):
        w.apply(name, data)

    assert w.status == "active" and w.owed_to_heirs() == {1: 50_000}
    assert w.instruct_due(today=date(2025, 10, 2)) is None
    assert w.instruct_due(today=date(2025, 10, 3))["basis"] == {"kind": "fixed", "amount": 50_000}


def test_an_inheritance_refused_while_frozen_is_tried_again_the_next_day():
    w = _started()
    first = w.instruct_due(today=DAY)
    w.apply(PAYOUT_INSTRUCTED, first)

    events = w.not_debited(first["payout_id"], reason="the fund account is frozen", account_status="frozen",
                           refused_at="2025-10-01T10:00:01+08:00")

    assert [name for name, _ in events] == [PAYOUT_NOT_DEBITED]
    for name, data in events:
        w.apply(name, data)
    assert w.instruct_due(today=DAY) is None
    assert w.instruct_due(today=date(2025, 10, 2))["basis"] == {"kind": "all"}


def test_an_inheritance_on_an_account_already_closed_completes_with_nothing_to_pay():
    w = _started()
    first = w.instruct_due(today=DAY)
    w.apply(PAYOUT_INSTRUCTED, first)

    events = w.not_debited(first["payout_id"], reason="the fund account is closed", account_status="closed",
                           refused_at="2025-10-01T10:00:01+08:00")

    assert events == [
        (PAYOUT_NOT_DEBITED, {"withdrawal_id": "WI1", "payout_id": "WI1-1", "reason": "the fund account is closed",
                              "refused_at": "2025-10-01T10:00:01+08:00"}),
        (WITHDRAWAL_COMPLETED, {"withdrawal_id": "WI1", "reason": "nothing_to_pay"}),
    ]
    for name, data in events:
        w.apply(name, data)
    assert w.status == "completed" and w.next_due() is None
    assert w.instruct_due(today=date(2026, 1, 1)) is None


def test_a_withdrawal_on_an_account_already_closed_completes_with_nothing_to_pay():
    w = _started(kind="withdrawal", plan=Plan("monthly", months=10))
    first = w.instruct_due(today=DAY)
    w.apply(PAYOUT_INSTRUCTED, first)

    events = w.not_debited(first["payout_id"], reason="the fund account is closed", account_status="closed",
                           refused_at="2025-10-01T10:00:01+08:00")

    assert events[-1] == (WITHDRAWAL_COMPLETED, {"withdrawal_id": "WI1", "reason": "nothing_to_pay"})


def test_an_inheritance_refusal_recorded_without_its_time_is_retried_after_its_due_date():
    w = _started()
    first = w.instruct_due(today=DAY)
    w.apply(PAYOUT_INSTRUCTED, first)
    w.apply(PAYOUT_NOT_DEBITED, {"withdrawal_id": "WI1", "payout_id": first["payout_id"],
                                 "reason": "the fund account is frozen"})

    assert w.instruct_due(today=DAY) is None
    assert w.next_due() == date(2025, 10, 2)


def test_a_refusal_published_before_it_carried_the_account_status_is_read_from_its_reason():
    assert _refused_account_status({"reason": "the fund account is closed"}) == "closed"
    assert _refused_account_status({"reason": "the fund account is frozen"}) == "frozen"
    assert _refused_account_status({"reason": "the fund account is frozen", "account_status": "frozen"}) == "frozen"
