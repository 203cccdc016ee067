from datetime import date

import pytest

from fund_account_support.builders import NOW, opened_account, random_id, recognised
from pension_fund_account.domain.errors import ContributionCapExceeded, FundAccountExists, ParticipantNotFound
from pension_fund_account.domain.events import CONTRIBUTION_QUOTA_REGISTERED, FUND_ACCOUNT_ASSIGNED, Event
from pension_fund_account.domain.participant_funds import ParticipantFunds

CAP = 1_200_000


def test_a_recognised_participant_is_assigned_their_first_fund_account():
    funds = recognised()

    assigned = funds.assign_fund_account("FA1", "ICBC", assigned_at=NOW)

    assert assigned == Event(FUND_ACCOUNT_ASSIGNED, {
        "participant_id": funds.participant_id, "fund_account_id": "FA1", "bank_code": "ICBC", "assigned_at": NOW,
    })


def test_a_second_active_fund_account_is_refused_whichever_bank_asks():
    funds = recognised()
    first = opened_account(funds, bank_code="ICBC")

    with pytest.raises(FundAccountExists) as refused:
        funds.assign_fund_account("FA2", "CCB", assigned_at=NOW)
    assert refused.value.code == "FUND_ACCOUNT_EXISTS"
    assert refused.value.extra["fund_account_id"] == first.fund_account_id


def test_a_participant_the_platform_has_not_registered_gets_no_fund_account():
    funds = ParticipantFunds.from_events(random_id("P"), [])

    with pytest.raises(ParticipantNotFound):
        funds.assign_fund_account("FA1", "ICBC", assigned_at=NOW)


def test_a_contribution_that_exactly_reaches_the_cap_is_registered():
    funds = recognised(contributed={2025: 700_000})

    registered = funds.register_contribution(fund_account_id="FA1", contribution_id="C1", amount=500_000, year=2025, cap=CAP)

    assert registered == Event(CONTRIBUTION_QUOTA_REGISTERED, {
        "participant_id": funds.participant_id, "fund_account_id": "FA1", "contribution_id": "C1",
        "year": 2025, "amount": 500_000, "contributed_this_year": CAP, "remaining_quota": 0,
    })


def test_one_fen_over_the_cap_is_refused_with_the_remaining_quota():
    funds = recognised(contributed={2025: 700_000})

    with pytest.raises(ContributionCapExceeded) as refused:
        funds.register_contribution(fund_account_id="FA1", contribution_id="C1", amount=500_001, year=2025, cap=CAP)
    assert refused.value.code == "CONTRIBUTION_CAP_EXCEEDED"
    assert refused.value.extra["remaining_quota"] == "5000.00"


def test_the_quota_of_another_year_does_not_count():
    funds = recognised(contributed={2025: CAP})

    registered = funds.register_contribution(fund_account_id="FA1", contribution_id="C1", amount=CAP, year=2026, cap=CAP)

    assert registered.data["contributed_this_year"] == CAP
    assert funds.remaining_quota(2025, CAP) == 0


def _receiving(may_continue: bool):
    from pension_fund_account.domain.events import PARTICIPANT_RECOGNISED, RECEIVING_STATUS_RECORDED
    from pension_fund_account.domain.participant_funds import ParticipantFunds

    return ParticipantFunds.from_events("P1", [
        (PARTICIPANT_RECOGNISED, {}),
        (RECEIVING_STATUS_RECORDED, {"may_continue_contributing": may_continue}),
    ])


def test_who_receives_by_reason_of_age_contributes_no_more():
    import pytest

    from pension_fund_account.domain.errors import ContributionsEnded

    with pytest.raises(ContributionsEnded) as refused:
        _receiving(False).register_contribution(fund_account_id="FA1", contribution_id="C1", amount=100, year=2025, cap=1_200_000)
    assert refused.value.code == "CONTRIBUTIONS_ENDED"


def test_who_receives_on_another_condition_may_go_on_contributing():
    registered = _receiving(True).register_contribution(
        fund_account_id="FA1", contribution_id="C1", amount=100, year=2025, cap=1_200_000)
    assert registered.data["contributed_this_year"] == 100


def test_receiving_status_is_recorded_once():
    assert _receiving(True).record_receiving(condition="unemployment", may_continue_contributing=True, since="t") is None
    assert _receiving(False).record_receiving(condition="retirement_age", may_continue_contributing=False,
                                              since="t") is None
    assert _receiving(False).record_receiving(condition="medical_expenses", may_continue_contributing=True,
                                              since="t") is None, "the age, approved first, ended them for good"


def test_the_age_approved_after_an_early_condition_ends_contributions_and_keeps_the_first_date():
    """A-CONT-8: only who withdrew on a condition other than the age may go on contributing."""
    from pension_fund_account.domain.errors import ContributionsEnded
    from pension_fund_account.domain.events import PARTICIPANT_RECOGNISED, RECEIVING_STATUS_RECORDED

    funds = ParticipantFunds.from_events("P1", [
        (PARTICIPANT_RECOGNISED, {}),
        (RECEIVING_STATUS_RECORDED, {"may_continue_contributing": True, "since": "2026-02-11T10:00:00+08:00"}),
    ])
    recorded = funds.record_receiving(condition="retirement_age", may_continue_contributing=False,
                                      since="2026-03-01T10:00:00+08:00")
    assert recorded is not None and recorded.data["condition"] == "retirement_age"
    funds.apply(recorded.name, recorded.data)
    assert funds.receiving_since == "2026-02-11T10:00:00+08:00"
    with pytest.raises(ContributionsEnded):
        funds.register_contribution(fund_account_id="FA1", contribution_id="C1", amount=100, year=2026, cap=CAP)
    restored = ParticipantFunds.from_events("P1", [], snapshot=funds.snapshot_state())
    assert restored.contributions_ended and restored.receiving_since == "2026-02-11T10:00:00+08:00"


def _died_after(*events):  # noqa: ANN002, ANN202
    from pension_fund_account.domain.events import DEATH_RECORDED, PARTICIPANT_RECOGNISED
    from pension_fund_account.domain.participant_funds import ParticipantFunds

    return ParticipantFunds.from_events("P1", [
        (PARTICIPANT_RECOGNISED, {}), *events,
        (DEATH_RECORDED, {"participant_id": "P1", "date_of_death": "2025-09-28", "recorded_at": "t"}),
    ])


def test_nothing_more_is_contributed_for_a_participant_who_died():
    """A-INH-1: the account is settled by inheritance; even a condition that let contributions go
    on (A-CONT-8) does not outlive the participant."""
    import pytest

    from pension_fund_account.domain.errors import ContributionsEnded
    from pension_fund_account.domain.events import RECEIVING_STATUS_RECORDED

    for before in ((), ((RECEIVING_STATUS_RECORDED, {"may_continue_contributing": True}),)):
        with pytest.raises(ContributionsEnded) as refused:
            _died_after(*before).register_contribution(
                fund_account_id="FA1", contribution_id="C1", amount=100, year=2025, cap=1_200_000)
        assert refused.value.code == "CONTRIBUTIONS_ENDED" and "died" in str(refused.value)


def test_a_death_is_recorded_once_and_survives_a_snapshot():
    from pension_fund_account.domain.events import DEATH_RECORDED, PARTICIPANT_RECOGNISED
    from pension_fund_account.domain.participant_funds import ParticipantFunds

    alive = ParticipantFunds.from_events("P1", [(PARTICIPANT_RECOGNISED, {})])
    recorded = alive.record_death(date_of_death="2025-09-28", recorded_at="2025-10-01T10:00:00+08:00")
    assert recorded.name == DEATH_RECORDED
    assert recorded.data == {"participant_id": "P1", "date_of_death": "2025-09-28",
                             "recorded_at": "2025-10-01T10:00:00+08:00"}
    died = _died_after()
    assert died.record_death(date_of_death="2025-09-28", recorded_at="t") is None
    restored = ParticipantFunds.from_events("P1", [], snapshot=died.snapshot_state())
    assert restored.deceased and restored.contributions_ended
    assert restored.record_death(date_of_death="2025-09-28", recorded_at="t") is None


def _emptied_after_withdrawing(condition_allows_contributing: bool = True):  # noqa: ANN202
    """A participant who contributed 3,000 yuan in 2025, then received on a condition (unemployment
    lets them go on contributing, A-CONT-8; age does not) and had the whole balance paid out."""
    from pension_fund_account.domain.events import PAYOUT_DEBITED, RECEIVING_STATUS_RECORDED

    funds = recognised()
    account = opened_account(funds, bank_code="ICBC")
    received, registered = account.receive_contribution(
        funds, contribution_id="C1", amount=300_000, channel="bank_transfer", reference="r", on=date(2025, 9, 5))
    for aggregate, event in ((account, received), (funds, registered)):
        aggregate.apply(event.name, event.data)
    funds.apply(RECEIVING_STATUS_RECORDED, {"may_continue_contributing": condition_allows_contributing})
    account.apply(PAYOUT_DEBITED, {"gross": 300_000})
    return funds, account


def _closed(funds, account):  # noqa: ANN001, ANN202
    """Given the withdrawal complete, the closure decided and recorded on both streams."""
    from pension_fund_account.domain.payouts import close_after_withdrawal

    closed, unassigned = close_after_withdrawal(account, funds, reason="benefits fully paid", closed_at=NOW)
    for aggregate, events in ((account, closed), (funds, unassigned)):
        for event in events:
            aggregate.apply(event.name, event.data)
    return closed, unassigned


def test_the_closure_of_an_emptied_account_unassigns_it_from_the_participant():
    from pension_fund_account.domain.events import FUND_ACCOUNT_CLOSED, FUND_ACCOUNT_UNASSIGNED
    from pension_fund_account.domain.payouts import close_after_withdrawal

    funds, account = _emptied_after_withdrawing()

    closed, unassigned = close_after_withdrawal(account, funds, reason="benefits fully paid", closed_at=NOW)

    assert closed == [Event(FUND_ACCOUNT_CLOSED, {"fund_account_id": account.fund_account_id,
                                                  "participant_id": funds.participant_id,
                                                  "reason": "benefits fully paid"})]
    assert unassigned == [Event(FUND_ACCOUNT_UNASSIGNED, {
        "participant_id": funds.participant_id, "fund_account_id": account.fund_account_id, "bank_code": "ICBC",
        "reason": "benefits fully paid", "unassigned_at": NOW,
    })]


def test_an_account_with_money_left_stays_open_and_assigned():
    from pension_fund_account.domain.events import PAYOUT_REFUNDED
    from pension_fund_account.domain.payouts import close_after_withdrawal

    funds, account = _emptied_after_withdrawing()
    account.apply(PAYOUT_REFUNDED, {"amount": 1})

    assert close_after_withdrawal(account, funds, reason="benefits fully paid", closed_at=NOW) == ([], [])
    assert funds.active_fund_account_id == account.fund_account_id


def test_a_closure_decided_again_unassigns_nothing_more():
    from pension_fund_account.domain.payouts import close_after_withdrawal

    funds, account = _emptied_after_withdrawing()
    _closed(funds, account)

    assert close_after_withdrawal(account, funds, reason="benefits fully paid", closed_at=NOW) == ([], [])
    assert funds.unassign_fund_account(account.fund_account_id, reason="again", unassigned_at=NOW) is None


def test_who_may_go_on_contributing_opens_a_new_account_at_any_bank_once_the_old_one_is_closed():
    """A-CONT-8, A-FACC-1: the closed account is no longer the active one."""
    funds, account = _emptied_after_withdrawing()
    _closed(funds, account)

    assigned = funds.assign_fund_account("FA2", "CCB", assigned_at=NOW)

    assert assigned == Event(FUND_ACCOUNT_ASSIGNED, {
        "participant_id": funds.participant_id, "fund_account_id": "FA2", "bank_code": "CCB", "assigned_at": NOW,
    })


def test_the_new_account_shares_the_year_s_cap_with_the_closed_one():
    """A-CONT-5/7: the 3,000 yuan contributed before the withdrawal still count in 2025."""
    funds, account = _emptied_after_withdrawing()
    _closed(funds, account)
    funds.apply(FUND_ACCOUNT_ASSIGNED, {"fund_account_id": "FA2", "bank_code": "CCB"})

    with pytest.raises(ContributionCapExceeded) as refused:
        funds.register_contribution(fund_account_id="FA2", contribution_id="C2", amount=900_001, year=2025, cap=CAP)
    assert refused.value.extra["remaining_quota"] == "9000.00"
    registered = funds.register_contribution(fund_account_id="FA2", contribution_id="C2", amount=900_000,
                                             year=2025, cap=CAP)
    assert (registered.data["contributed_this_year"], registered.data["remaining_quota"]) == (CAP, 0)


def test_the_unassignment_survives_a_snapshot():
    funds, account = _emptied_after_withdrawing()
    _closed(funds, account)

    restored = ParticipantFunds.from_events(funds.participant_id, [], snapshot=funds.snapshot_state())

    assert restored == funds and restored.active_fund_account_id is None
    assert restored.assign_fund_account("FA2", "CCB", assigned_at=NOW).name == FUND_ACCOUNT_ASSIGNED


def test_no_new_account_is_opened_for_who_contributes_no_more():
    """A-CONT-8: receiving by reason of age; A-INH-1: death. Their emptied account closes, and no
    other one is opened for them."""
    from pension_fund_account.domain.errors import ContributionsEnded
    from pension_fund_account.domain.events import DEATH_RECORDED

    by_age = _emptied_after_withdrawing(condition_allows_contributing=False)
    died = _emptied_after_withdrawing()
    died[0].apply(DEATH_RECORDED, {})
    for funds, account in (by_age, died):
        _closed(funds, account)
        with pytest.raises(ContributionsEnded) as refused:
            funds.assign_fund_account("FA2", "CCB", assigned_at=NOW)
        assert refused.value.code == "CONTRIBUTIONS_ENDED"
