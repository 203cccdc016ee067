from datetime import date

import pytest

from pension_account.domain.id_number import InvalidIdNumber, check_character, parse_id_number

TODAY = date(2025, 8, 15)


def test_a_valid_id_number_is_accepted_with_its_date_of_birth():
    parsed = parse_id_number("11010519491231002X", today=TODAY)
    assert parsed.value == "11010519491231002X"
    assert parsed.date_of_birth == date(1949, 12, 31)
    assert parsed.region == "110105"


def test_a_lower_case_x_check_character_is_normalised():
    assert parse_id_number("11010519491231002x", today=TODAY).value == "11010519491231002X"


def test_the_check_character_follows_iso_7064_mod_11_2():
    assert check_character("11010519491231002") == "X"
    assert check_character("41010519900101123") == "3"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("110105194912310021", "check digit"),
        ("11010519491331002X", "date of birth"),
        ("11010519490230002X", "date of birth"),
        ("1101051949123100", "17 digits"),
        ("01010519491231002X", "17 digits"),
        ("11010519491231002Y", "17 digits"),
        ("", "17 digits"),
    ],
)
def test_an_invalid_id_number_is_refused_with_its_reason(raw, reason):
    with pytest.raises(InvalidIdNumber) as refused:
        parse_id_number(raw, today=TODAY)
    assert refused.value.code == "INVALID_ID_NUMBER"
    assert reason in refused.value.detail


def test_a_date_of_birth_after_the_business_date_is_refused():
    born_tomorrow = "110105202508160" + "01"
    with pytest.raises(InvalidIdNumber):
        parse_id_number(born_tomorrow + check_character(born_tomorrow), today=TODAY)
