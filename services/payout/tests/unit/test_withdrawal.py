from datetime import date

import pytest

from pension_payout.domain.schedule import Plan
from pension_payout.domain.withdrawal import (
    PAYMENTS_WITHHELD, PAYOUT_DEBIT_RECORDED, PAYOUT_INSTRUCTED, PAYOUT_MADE, WITHDRAWAL_METHOD_CHANGED,
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
        _started(Plan("monthly", months=10)).change_method(Plan("lump_sum"), on=date(2025, 8, 31), changed_at="t")
    assert refused.value.code == "WITHDRAWAL_METHOD_LOCKED"


def test_from_2025_09_01_a_method_change_applies_from_the_next_payout():
    w = _started(Plan("monthly", months=10))
    _pay_instalment(w, w.instruct_due(today=date(2025, 8, 15)), gross=120_000, balance_after=1_080_000)
    changed = w.change_method(Plan("lump_sum"), on=date(2025, 10, 1), changed_at="t")
    assert changed["from_instalment"] == 2
    w.apply(WITHDRAWAL_METHOD_CHANGED, changed)
    assert w.instruct_due(today=date(2025, 10, 1))["basis"] == {"kind": "all"}


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
