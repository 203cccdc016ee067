from datetime import date

import pytest

from pension_account.domain.participant import PARTICIPANT_REGISTERED
from pension_account.domain.withdrawal import (
    PARTICIPANT_DIED, PARTICIPANT_RECEIVING, WITHDRAWAL_APPLIED, WITHDRAWAL_APPROVED, WITHDRAWAL_MATERIALS_REQUESTED,
    WITHDRAWAL_REJECTED, ConditionNotInForce, Heir, ParticipantLife, WithdrawalApplication, eligibility, validate_shares,
)
from pension_shared.errors import DomainError, Forbidden

REGISTERED = (PARTICIPANT_REGISTERED, {"insured_region": "410100"})


def _apply(condition: str, on: date) -> dict:
    return ParticipantLife.from_events([REGISTERED]).apply_for_withdrawal(
        application_id="WA1", participant_id="P1", condition=condition, evidence=["doc-1"], on=on,
        applied_at="t", channel="bank:ICBC",
    )


def _applied(condition: str = "unemployment") -> WithdrawalApplication:
    return WithdrawalApplication.from_events("WA1", [(WITHDRAWAL_APPLIED, _apply(condition, date(2025, 10, 1)))])


@pytest.mark.parametrize("condition", ["retirement_age", "incapacity", "emigration"])
def test_the_original_three_conditions_are_accepted_before_the_2025_rules(condition):
    assert _apply(condition, date(2025, 8, 31))["condition"] == condition


@pytest.mark.parametrize("condition", ["medical_expenses", "unemployment", "subsistence_allowance"])
def test_the_three_newer_conditions_are_refused_before_2025_09_01_and_accepted_from_it(condition):
    with pytest.raises(ConditionNotInForce) as refused:
        _apply(condition, date(2025, 8, 31))
    assert refused.value.code == "WITHDRAWAL_CONDITION_NOT_IN_FORCE"
    assert _apply(condition, date(2025, 9, 1))["insured_region"] == "410100"


def test_approval_by_the_agency_of_the_insured_region_moves_the_participant_to_receiving():
    events = _applied("unemployment").decide(decision="approved", reason=None, agency_region="410100", decided_at="t")

    assert [name for name, _ in events] == [WITHDRAWAL_APPROVED, PARTICIPANT_RECEIVING]
    assert events[1][1]["may_continue_contributing"] is True


def test_who_qualified_by_retirement_age_does_not_go_on_contributing():
    events = _applied("retirement_age").decide(decision="approved", reason=None, agency_region="410100", decided_at="t")
    assert events[1][1]["may_continue_contributing"] is False


def test_an_agency_of_another_region_cannot_decide():
    with pytest.raises(Forbidden):
        _applied().decide(decision="approved", reason=None, agency_region="110100", decided_at="t")


def test_materials_can_be_requested_and_the_application_decided_afterwards():
    application = _applied()
    requested = application.decide(decision="materials_requested", reason="hospital bills", agency_region="410100", decided_at="t")
    assert requested[0][0] == WITHDRAWAL_MATERIALS_REQUESTED
    later = WithdrawalApplication.from_events("WA1", [(WITHDRAWAL_APPLIED, _apply("unemployment", date(2025, 10, 1))), *requested])
    assert later.status == "materials_requested"
    assert later.decide(decision="rejected", reason="not met", agency_region="410100", decided_at="t")[0][0] == WITHDRAWAL_REJECTED


def test_a_decided_application_cannot_be_decided_again():
    applied = (WITHDRAWAL_APPLIED, _apply("unemployment", date(2025, 10, 1)))
    rejected = (WITHDRAWAL_REJECTED, {"reason": "x"})
    with pytest.raises(DomainError):
        WithdrawalApplication.from_events("WA1", [applied, rejected]).decide(
            decision="approved", reason=None, agency_region="410100", decided_at="t")


def test_rejection_needs_a_reason():
    with pytest.raises(DomainError) as refused:
        _applied().decide(decision="rejected", reason=None, agency_region="410100", decided_at="t")
    assert refused.value.code == "VALIDATION_FAILED"


def test_a_deceased_participant_cannot_apply():
    life = ParticipantLife.from_events([REGISTERED, (PARTICIPANT_DIED, {})])
    with pytest.raises(DomainError):
        life.apply_for_withdrawal(application_id="WA2", participant_id="P1", condition="retirement_age",
                                  evidence=[], on=date(2025, 10, 1), applied_at="t", channel="bank:ICBC")


@pytest.mark.parametrize("shares", [["0.5", "0.5"], ["0.333333", "0.333333", "0.333334"], ["1"]])
def test_shares_adding_up_to_one_are_accepted(shares):
    validate_shares([Heir(s, "ICBC", "****1234") for s in shares])


@pytest.mark.parametrize("shares", [["0.5", "0.4"], ["0.6", "0.6"], ["0", "1"], []])
def test_shares_not_adding_up_to_one_are_refused(shares):
    with pytest.raises(DomainError) as refused:
        validate_shares([Heir(s, "ICBC", "****1234") for s in shares])
    assert refused.value.code == "VALIDATION_FAILED"


def test_death_is_registered_once_and_not_dated_after_the_business_date():
    life = ParticipantLife.from_events([REGISTERED])
    heirs = [Heir("1", "ICBC", "****1234")]
    with pytest.raises(DomainError):
        life.register_death(participant_id="P1", date_of_death=date(2025, 10, 2), on=date(2025, 10, 1),
                            heirs=heirs, heirs_sealed="s", registered_at="t")
    died = life.register_death(participant_id="P1", date_of_death=date(2025, 9, 30), on=date(2025, 10, 1),
                               heirs=heirs, heirs_sealed="s", registered_at="t")
    assert died["heirs"] == [{"heir_no": 1, "share": "1", "payee_bank_code": "ICBC", "payee_account_masked": "****1234"}]
    with pytest.raises(DomainError):
        ParticipantLife.from_events([REGISTERED, (PARTICIPANT_DIED, died)]).register_death(
            participant_id="P1", date_of_death=date(2025, 9, 30), on=date(2025, 10, 1), heirs=heirs,
            heirs_sealed="s", registered_at="t")


@pytest.mark.parametrize(("status", "approved", "expected"), [
    ("active", [], (True, False, None)),
    ("receiving", ["retirement_age"], (False, True, "retirement_age")),
    ("receiving", ["medical_expenses"], (True, True, "medical_expenses")),
    ("receiving", [], (False, True, None)),  # the approval not read yet: nothing granted on a guess
    ("deceased", ["incapacity"], (False, False, None)),
    ("closed", [], (False, False, None)),
    # latest first: the age approved after an early condition, or before one, ends contributions
    ("receiving", ["retirement_age", "unemployment"], (False, True, "retirement_age")),
    ("receiving", ["medical_expenses", "retirement_age"], (False, True, "retirement_age")),
    ("receiving", ["incapacity", "unemployment"], (True, True, "incapacity")),
])
def test_what_a_participant_may_do_follows_their_status_and_the_conditions_approved(status, approved, expected) -> None:
    may = eligibility(status, approved)
    assert (may["may_contribute"], may["may_withdraw"], may["withdrawal_condition"]) == expected


def _receiving(condition: str) -> tuple[str, dict]:
    return (PARTICIPANT_RECEIVING, {"condition": condition, "may_continue_contributing": condition != "retirement_age"})


@pytest.mark.parametrize(("before", "approved", "news"), [
    ([], "unemployment", True),  # active: receiving is news
    ([], "retirement_age", True),
    (["unemployment"], "retirement_age", True),  # A-CONT-8: the age ends the contributions the early one allowed
    (["unemployment"], "medical_expenses", False),
    (["retirement_age"], "unemployment", False),  # ended for good
    (["unemployment", "retirement_age"], "retirement_age", False),
])
def test_an_approval_is_recorded_on_the_participant_when_it_puts_them_in_receiving_or_ends_contributions(
        before, approved, news) -> None:
    life = ParticipantLife.from_events([REGISTERED, *(_receiving(c) for c in before)])
    assert life.receives(_receiving(approved)[1]) is news


def test_a_deceased_participant_has_no_news_from_an_approval() -> None:
    life = ParticipantLife.from_events([REGISTERED, (PARTICIPANT_DIED, {})])
    assert life.receives(_receiving("retirement_age")[1]) is False


def test_no_withdrawal_of_a_deceased_participant_is_approved() -> None:
    ParticipantLife.from_events([REGISTERED, _receiving("unemployment")]).may_be_approved()
    with pytest.raises(DomainError, match="deceased") as refused:
        ParticipantLife.from_events([REGISTERED, (PARTICIPANT_DIED, {})]).may_be_approved()
    assert refused.value.code == "CONFLICT"
