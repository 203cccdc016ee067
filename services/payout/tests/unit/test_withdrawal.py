from datetime import date

import pytest

from pension_payout.domain.schedule import Plan
from pension_payout.domain.withdrawal import (
    PAYMENTS_WITHHELD, PAYOUT_DEBIT_RECORDED, PAYOUT_INSTRUCTED, PAYOUT_MADE, PAYOUT_NOT_DEBITED,
    WITHDRAWAL_METHOD_CHANGED,
    WITHDRAWAL_STARTED, Withdrawal, WithdrawalMethodLocked,
)
from pension_shared.policy import policy_on

TAX = policy_on(date(2025, 10, 1)).withdrawal_tax


def _started(plan: Plan, first_due: date = date(2025, 8, 15), kind: str = "withdrawal", heirs=None) -> Withdrawal:
    w = Withdrawal("W1")
    w.apply(WITHDRAWAL_STARTED, w.start(participant_id="P1", fund_account_id="FA1", bank_code="ICBC",
                                        withholding_city="410100", plan=plan, first_due=first_due, kind=kind,
                                        started_at="t", heirs=heirs))
    return w


def _pay_instalment(w: Withdrawal, instruction: dict, *, gross: int, balance_after: int) -> None:
    w.apply(PAYOUT_INSTRUCTED, instruction)
    debited = {"payout_id": instruction["payout_id"], "gross": gross, "balance_after": balance_after,
               "bank_code": "ICBC", "withholding_city": "410100"}
    w.apply(PAYOUT_DEBIT_RECORDED, debited)
    withheld = w.withhold(instruction["payout_id"], gross=gross, tax_of=TAX, payee=("ICBC", "****1234"))
    w.apply(PAYMENTS_WITHHELD, withheld)
    for p in withheld["payments"]:
        w.apply(PAYOUT_MADE, {"payout_id": p["payment_id"], "paid_at": "t"})


def test_the_first_instalment_is_due_on_the_day_the_withdrawal_is_created():
    instruction = _started(Plan("monthly", months=10)).instruct_due(today=date(2025, 8, 15))
    assert instruction["payout_id"] == "W1-1" and instruction["basis"] == {"kind": "share", "denominator": 10}


def test_an_instalment_is_not_instructed_before_its_due_date_nor_twice():
    w = _started(Plan("monthly", months=10))
    w.apply(PAYOUT_INSTRUCTED, w.instruct_due(today=date(2025, 8, 15)))
    assert w.instruct_due(today=date(2025, 12, 1)) is None, "the first one has not settled"


def test_catching_up_after_downtime_instructs_each_missed_instalment_in_turn():
    w = _started(Plan("monthly", months=10))
    balance = 1_200_000
    numbers = []
    while (instruction := w.instruct_due(today=date(2025, 11, 20))) is not None:
        gross = balance // instruction["basis"]["denominator"]
        balance -= gross
        _pay_instalment(w, instruction, gross=gross, balance_after=balance)
        numbers.append(instruction["instalment_no"])
    assert numbers == [1, 2, 3, 4]


def test_the_method_is_locked_before_2025_09_01():
    with pytest.raises(WithdrawalMethodLocked) as refused:
        _started(Plan("monthly", months=10)).change_method(Plan("lump_sum"), on=date(2025, 8, 31),
                                                           changed_at="2025-08-31T09:00:00+08:00")
    assert refused.value.code == "WITHDRAWAL_METHOD_LOCKED"


def test_from_2025_09_01_a_method_change_applies_from_the_next_payout():
    w = _started(Plan("monthly", months=10))
    _pay_instalment(w, w.instruct_due(today=date(2025, 8, 15)), gross=120_000, balance_after=1_080_000)
    changed = w.change_method(Plan("lump_sum"), on=date(2025, 10, 1), changed_at="2025-10-01T09:00:00+08:00")
    assert changed["from_instalment"] == 2
    w.apply(WITHDRAWAL_METHOD_CHANGED, changed)
    assert w.instruct_due(today=date(2025, 10, 1))["basis"] == {"kind": "all"}


def _monthly_paid_twice() -> Withdrawal:
    """Ten monthly instalments from 2025-08-15, the first two paid (08-15 and 09-15)."""
    w = _started(Plan("monthly", months=10))
    _pay_instalment(w, w.instruct_due(today=date(2025, 8, 15)), gross=120_000, balance_after=1_080_000)
    _pay_instalment(w, w.instruct_due(today=date(2025, 9, 15)), gross=120_000, balance_after=960_000)
    return w


def _changed(w: Withdrawal, plan: Plan, at: str) -> None:
    w.apply(WITHDRAWAL_METHOD_CHANGED, w.change_method(plan, on=date.fromisoformat(at[:10]), changed_at=at))


def test_a_change_to_a_lump_sum_is_paid_at_once_not_on_the_next_scheduled_date():
    w = _monthly_paid_twice()
    _changed(w, Plan("lump_sum"), "2025-09-20T10:00:00+08:00")
    assert w.next_due() == date(2025, 9, 20), "the schedule's next date was 2025-10-15"
    instruction = w.instruct_due(today=date(2025, 9, 20))
    assert (instruction["instalment_no"], instruction["due_date"], instruction["basis"]) == (3, "2025-09-20", {"kind": "all"})


def test_the_day_of_a_change_to_a_lump_sum_is_the_business_date_in_shanghai():
    w = _monthly_paid_twice()
    _changed(w, Plan("lump_sum"), "2025-09-20T17:30:00+00:00")  # 01:30 on 2025-09-21 in Shanghai
    assert w.next_due() == date(2025, 9, 21)


def test_a_change_to_a_lump_sum_while_an_instalment_is_in_flight_is_paid_once_that_one_settles():
    w = _monthly_paid_twice()
    instruction = w.instruct_due(today=date(2025, 10, 15))
    w.apply(PAYOUT_INSTRUCTED, instruction)
    _changed(w, Plan("lump_sum"), "2025-10-16T09:00:00+08:00")
    assert w.next_due() is None, "instalment 3 is in flight"
    w.apply(PAYOUT_DEBIT_RECORDED, {"payout_id": instruction["payout_id"], "gross": 120_000, "balance_after": 840_000,
                                    "bank_code": "ICBC", "withholding_city": "410100"})
    withheld = w.withhold(instruction["payout_id"], gross=120_000, tax_of=TAX, payee=("ICBC", "****1234"))
    w.apply(PAYMENTS_WITHHELD, withheld)
    w.apply(PAYOUT_MADE, {"payout_id": withheld["payments"][0]["payment_id"], "paid_at": "t"})
    following = w.instruct_due(today=date(2025, 10, 16))
    assert (following["instalment_no"], following["due_date"], following["basis"]) == (4, "2025-10-16", {"kind": "all"})


def test_a_lump_sum_refused_after_a_change_is_tried_again_the_next_business_date_not_at_every_tick():
    w = _monthly_paid_twice()
    _changed(w, Plan("lump_sum"), "2025-09-20T10:00:00+08:00")
    instruction = w.instruct_due(today=date(2025, 9, 20))
    w.apply(PAYOUT_INSTRUCTED, instruction)
    w.apply(PAYOUT_NOT_DEBITED, {"payout_id": instruction["payout_id"], "reason": "the account is frozen",
                                 "refused_at": "2025-09-20T10:00:05+08:00"})
    assert w.instruct_due(today=date(2025, 9, 20)) is None
    assert w.next_due() == date(2025, 9, 21)
    assert w.instruct_due(today=date(2025, 9, 21))["basis"] == {"kind": "all"}


def test_a_change_from_a_lump_sum_back_to_monthly_follows_the_schedule_again():
    w = _monthly_paid_twice()
    _changed(w, Plan("lump_sum"), "2025-09-20T10:00:00+08:00")
    _changed(w, Plan("monthly", months=8), "2025-09-20T11:00:00+08:00")
    assert w.next_due() == date(2025, 10, 15)
    assert w.instruct_due(today=date(2025, 9, 20)) is None


def test_an_inheritance_pays_every_heir_by_share_with_tax_withheld_on_each():
    heirs = [{"heir_no": n, "share": s, "payee_bank_code": "BOC", "payee_account_masked": f"****{n}"}
             for n, s in ((1, "0.5"), (2, "0.25"), (3, "0.25"))]
    w = _started(Plan("lump_sum"), kind="inheritance", heirs=heirs)
    instruction = w.instruct_due(today=date(2025, 10, 1))
    assert instruction["basis"] == {"kind": "all"}
    w.apply(PAYOUT_INSTRUCTED, instruction)
    withheld = w.withhold(instruction["payout_id"], gross=1_000_003, tax_of=TAX, payee=("ICBC", "x"))
    grosses = [p["gross"] for p in withheld["payments"]]
    assert grosses == [500_003, 250_000, 250_000] and sum(grosses) == 1_000_003
    assert [p["payee_account_masked"] for p in withheld["payments"]] == ["****1", "****2", "****3"]


def test_after_a_bank_change_the_withdrawal_follows_the_account_the_money_came_from():
    w = _started(Plan("monthly", months=10))
    instruction = w.instruct_due(today=date(2025, 8, 15))
    w.apply(PAYOUT_INSTRUCTED, instruction)
    w.apply(PAYOUT_DEBIT_RECORDED, {"payout_id": instruction["payout_id"], "gross": 120_000, "balance_after": 1_080_000,
                                    "fund_account_id": "FA2", "bank_code": "CCB", "withholding_city": "110000"})
    assert (w.fund_account_id, w.bank_code, w.withholding_city) == ("FA2", "CCB", "110000")
