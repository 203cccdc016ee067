"""Given events, when the taxpayer decides, then events: vouchers, withholding, statements."""

from __future__ import annotations

from pension_tax.domain.events import (
    ANNUAL_TAX_STATEMENT_ISSUED, DEDUCTION_VOUCHER_ISSUED, DEDUCTION_VOUCHER_VOIDED, EVENT_AWAITING_TAXPAYER,
    TAXPAYER_REGISTERED, WITHDRAWAL_TAX_WITHHELD, WITHDRAWAL_TAX_WITHHOLDING_REVERSED, Event,
)
from pension_tax.domain.taxpayer import (
    Contribution, ContributionReversal, Payout, PayoutReversal, TaxRules, Taxpayer, UnknownContribution,
)
from pension_tax.domain.vouchers import VoucherSigner, code_matches

import pytest

RULES = TaxRules(VoucherSigner.from_secret("unit-test-secret"))
AT = "2025-03-10T10:00:00.000000+08:00"
ID_NUMBER = "11010519491231002X"


def registered(participant_id: str = "P1") -> Taxpayer:
    taxpayer = Taxpayer(participant_id)
    taxpayer.register(id_number=ID_NUMBER, name="张三", registered_at=AT, rules=RULES, at=AT)
    return taxpayer


def contribute(taxpayer: Taxpayer, contribution_id: str, amount: int, year: int = 2025) -> list[Event]:
    return taxpayer.take(Contribution(contribution_id, "FA1", year, amount), RULES, at=AT)


def payout(payout_id: str, gross: int, tax: int, *, paid_at: str = "2025-10-15T10:00:00+08:00") -> Payout:
    return Payout(withdrawal_id="W1", payout_id=payout_id, fund_account_id="FA1", bank_code="ICBC",
                  withholding_city="410100", gross=gross, tax=tax, net=gross - tax, paid_at=paid_at,
                  payout_kind="withdrawal")


def replayed(taxpayer: Taxpayer, decided: list[Event]) -> Taxpayer:
    """The aggregate rebuilt from what it recorded, as a replay would."""
    history = [(TAXPAYER_REGISTERED, {"participant_id": taxpayer.participant_id, "id_number": ID_NUMBER,
                                      "name": "张三", "registered_at": AT})]
    return Taxpayer.from_events(taxpayer.participant_id, history + [(e.name, e.data) for e in decided])


def test_a_contribution_gets_one_voucher_carrying_the_taxpayers_identity():
    taxpayer = registered()
    [issued] = contribute(taxpayer, "C1", 500_000)
    assert issued.name == DEDUCTION_VOUCHER_ISSUED
    data = issued.data
    assert (data["participant_id"], data["id_number"], data["name"]) == ("P1", ID_NUMBER, "张三")
    assert (data["year"], data["amount"], data["cumulative_amount"], data["deductible_amount"]) == (2025, 500_000, 500_000, 500_000)
    assert data["voucher_no"].startswith("V2025") and len(data["voucher_no"]) == 21
    assert data["contribution_id"] == "C1" and data["fund_account_id"] == "FA1" and data["issued_at"] == AT
    assert code_matches(data["verification_code"].lower(), data["verification_code"])


def test_voucher_numbers_are_stable_and_unique_per_contribution():
    first, second = registered(), registered()
    [a1] = contribute(first, "C1", 100)
    [b1] = contribute(second, "C1", 100)
    [a2] = contribute(first, "C2", 100)
    assert a1.data["voucher_no"] == b1.data["voucher_no"]
    assert a1.data["voucher_no"] != a2.data["voucher_no"]
    other_key = TaxRules(VoucherSigner.from_secret("another-secret"))
    assert other_key.signer.voucher_no("C1", 2025) != a1.data["voucher_no"]


def test_a_redelivered_contribution_issues_nothing_more():
    taxpayer = registered()
    contribute(taxpayer, "C1", 100)
    assert contribute(taxpayer, "C1", 100) == []


def test_cumulative_amounts_run_over_the_year_and_restart_in_the_next():
    taxpayer = registered()
    amounts = [cumulative for c, a in (("C1", 100_000), ("C2", 250_000), ("C3", 50_000))
               for cumulative in [contribute(taxpayer, c, a)[0].data["cumulative_amount"]]]
    assert amounts == [100_000, 350_000, 400_000]
    [next_year] = contribute(taxpayer, "C4", 70_000, year=2026)
    assert next_year.data["cumulative_amount"] == 70_000


def test_the_deductible_part_never_takes_the_year_above_the_limit():
    taxpayer = registered()
    decided = [e for i, amount in enumerate((700_000, 400_000, 300_000, 50_000))
               for e in contribute(taxpayer, f"C{i}", amount)]
    deductible = [e.data["deductible_amount"] for e in decided]
    assert deductible == [700_000, 400_000, 100_000, 0]
    assert sum(deductible) == 1_200_000 == decided[-1].data["deduction_limit"]
    assert decided[-1].data["cumulative_amount"] == 1_450_000


def test_a_contribution_before_the_registration_awaits_it_and_is_then_vouched_in_order():
    taxpayer = Taxpayer("P1")
    recorded = contribute(taxpayer, "C1", 100_000) + contribute(taxpayer, "C1", 100_000) + contribute(taxpayer, "C2", 20_000)
    assert [(e.name, e.data["kind"]) for e in recorded] == [(EVENT_AWAITING_TAXPAYER, "contribution")] * 2
    rebuilt = Taxpayer.from_events("P1", [(e.name, e.data) for e in recorded])
    decided = rebuilt.register(id_number=ID_NUMBER, name="张三", registered_at=AT, rules=RULES, at=AT)
    assert [e.name for e in decided] == [TAXPAYER_REGISTERED, DEDUCTION_VOUCHER_ISSUED, DEDUCTION_VOUCHER_ISSUED]
    assert [(e.data["contribution_id"], e.data["cumulative_amount"]) for e in decided[1:]] == [("C1", 100_000), ("C2", 120_000)]
    assert rebuilt.awaiting == []
    assert rebuilt.register(id_number=ID_NUMBER, name="张三", registered_at=AT, rules=RULES, at=AT) == []


def test_a_reversed_contribution_voids_its_voucher_and_corrects_the_year_by_a_new_event():
    taxpayer = registered()
    issued = contribute(taxpayer, "C1", 800_000) + contribute(taxpayer, "C2", 400_000)
    [voided] = taxpayer.take(ContributionReversal("C1", "returned by the bank"), RULES, at=AT)
    assert voided.name == DEDUCTION_VOUCHER_VOIDED
    assert voided.data["voucher_no"] == issued[0].data["voucher_no"]
    assert (voided.data["amount"], voided.data["cumulative_amount"], voided.data["deductible_total"]) == (800_000, 400_000, 400_000)
    assert issued[0].data["amount"] == 800_000, "the issued voucher is never edited"
    assert taxpayer.take(ContributionReversal("C1", "again"), RULES, at=AT) == []
    [after] = contribute(taxpayer, "C3", 300_000)
    assert (after.data["cumulative_amount"], after.data["deductible_amount"]) == (700_000, 300_000)


def test_a_reversal_of_an_unknown_contribution_is_refused():
    with pytest.raises(UnknownContribution):
        registered().take(ContributionReversal("C9", "?"), RULES, at=AT)


@pytest.mark.parametrize(("gross", "tax"), [(1_234_567, 37_037), (120_000, 3_600), (1, 0), (17, 1)])
def test_three_percent_of_each_payout_is_withheld_rounded_half_up(gross, tax):
    [withheld] = registered().take(payout("PO1", gross, tax), RULES, at=AT)
    assert withheld.name == WITHDRAWAL_TAX_WITHHELD
    assert (withheld.data["gross"], withheld.data["tax"], withheld.data["expected_tax"]) == (gross, tax, tax)
    assert withheld.data["discrepancy"] is False and withheld.data["tax_rate_bp"] == 300


def test_a_payout_whose_tax_disagrees_keeps_the_banks_figure_and_is_flagged():
    [withheld] = registered().take(payout("PO1", 1_234_567, 37_000), RULES, at=AT)
    assert withheld.data["tax"] == 37_000 and withheld.data["expected_tax"] == 37_037
    assert withheld.data["discrepancy"] is True


def test_a_payout_belongs_to_the_shanghai_month_it_was_paid_in():
    [withheld] = registered().take(payout("PO1", 100, 3, paid_at="2025-12-31T16:30:00Z"), RULES, at=AT)
    assert (withheld.data["year"], withheld.data["month"]) == (2026, "2026-01")


def test_a_reversed_payout_reverses_its_withholding_once():
    taxpayer = registered()
    taxpayer.take(payout("PO1", 120_000, 3_600), RULES, at=AT)
    [reversed_] = taxpayer.take(PayoutReversal("W1", "PO1", "bounced", AT), RULES, at=AT)
    assert reversed_.name == WITHDRAWAL_TAX_WITHHOLDING_REVERSED
    assert (reversed_.data["gross"], reversed_.data["tax"], reversed_.data["month"]) == (120_000, 3_600, "2025-10")
    assert taxpayer.take(PayoutReversal("W1", "PO1", "bounced", AT), RULES, at=AT) == []
    assert taxpayer.years[2025].tax_withheld == 0


def test_the_annual_statement_sums_the_year_and_is_issued_once():
    taxpayer = registered()
    decided = contribute(taxpayer, "C1", 900_000) + contribute(taxpayer, "C2", 500_000)
    decided += taxpayer.take(payout("PO1", 1_234_567, 37_037), RULES, at=AT)
    decided += taxpayer.take(payout("PO2", 120_000, 3_600), RULES, at=AT)
    decided += taxpayer.take(PayoutReversal("W1", "PO2", "bounced", AT), RULES, at=AT)
    [statement] = taxpayer.issue_statement(2025, rules=RULES, at="2026-01-01T00:00:00+08:00")
    assert statement.name == ANNUAL_TAX_STATEMENT_ISSUED
    figures = {k: statement.data[k] for k in ("contributed", "deductible", "deduction_limit", "withdrawn_gross", "tax_withheld")}
    assert figures == {"contributed": 1_400_000, "deductible": 1_200_000, "deduction_limit": 1_200_000,
                       "withdrawn_gross": 1_234_567, "tax_withheld": 37_037}
    assert taxpayer.issue_statement(2025, rules=RULES, at="2026-01-02T00:00:00+08:00") == []
    again = replayed(taxpayer, decided + [statement])
    assert again.issue_statement(2025, rules=RULES, at="2026-01-03T00:00:00+08:00") == []


def test_no_statement_for_a_year_without_activity():
    assert registered().issue_statement(2024, rules=RULES, at=AT) == []
