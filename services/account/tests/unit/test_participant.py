import pytest

from pension_account.domain.participant import (
    ID_NUMBER_CLAIMED, IdNumberClaim, ParticipantExists, Registration, register,
)


def test_an_unclaimed_id_number_is_claimed_by_the_new_participant():
    claim = IdNumberClaim.from_events([])

    assert claim.claim("P1", "digest") == {"participant_id": "P1", "id_number_digest": "digest"}


def test_a_second_registration_for_the_same_person_is_refused_with_the_existing_id():
    claim = IdNumberClaim.from_events([(ID_NUMBER_CLAIMED, {"participant_id": "P1", "id_number_digest": "d"})])

    with pytest.raises(ParticipantExists) as refused:
        claim.claim("P2", "d")
    assert refused.value.code == "PARTICIPANT_EXISTS"
    assert refused.value.extra == {"participant_id": "P1"}


def test_the_registered_event_is_pseudonymous():
    data = register(Registration(
        participant_id="P1", id_number_digest="d", id_number_masked="1101**********002X",
        identity_sealed="sealed", payee_sealed="sealed-payee", insurance_type="employee", insured_region="410100",
        channel="bank", ss_card_bank_code="ICBC", ss_card_account_masked="****2233",
        registered_at="2025-08-15T09:00:00.000000+08:00", registered_by="bank:ICBC",
    ))

    assert "11010519491231002X" not in repr(data)
    assert data["id_number_masked"] == "1101**********002X"
    assert data["ss_card_account"] == {"bank_code": "ICBC", "account_number_masked": "****2233"}
