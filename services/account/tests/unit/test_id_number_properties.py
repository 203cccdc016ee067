"""Property tests of the ID number (GB 11643): every well-formed number is accepted, and the
check character catches any single changed character."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pension_account.domain.id_number import InvalidIdNumber, check_character, parse_id_number

TODAY = date(2025, 10, 1)
PROPERTIES = settings(max_examples=300, deadline=None, database=None)
CHARACTERS = "0123456789X"


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.integers(min_value=110000, max_value=829999))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    sequence = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


@PROPERTIES
@given(id_numbers())
def test_every_generated_id_number_is_accepted(id_number: str) -> None:
    assert parse_id_number(id_number, today=TODAY).value == id_number
    assert parse_id_number(id_number.lower(), today=TODAY).value == id_number


@PROPERTIES
@given(id_numbers(), st.integers(min_value=0, max_value=17), st.sampled_from(CHARACTERS))
def test_any_single_changed_character_is_rejected(id_number: str, position: int, replacement: str) -> None:
    changed = id_number[:position] + replacement + id_number[position + 1:]
    if changed == id_number:
        return
    with pytest.raises(InvalidIdNumber):
        parse_id_number(changed, today=TODAY)


@PROPERTIES
@given(id_numbers(), st.integers(min_value=0, max_value=16))
def test_two_swapped_neighbouring_digits_are_rejected_unless_equal(id_number: str, position: int) -> None:
    swapped = id_number[:position] + id_number[position + 1] + id_number[position] + id_number[position + 2:]
    if swapped == id_number:
        return
    with pytest.raises(InvalidIdNumber):
        parse_id_number(swapped, today=TODAY)


@PROPERTIES
@given(st.text(max_size=40))
def test_any_text_is_either_a_valid_id_number_or_refused_with_the_promised_code(text: str) -> None:
    try:
        parsed = parse_id_number(text, today=TODAY)
    except InvalidIdNumber as refusal:
        assert refusal.code == "INVALID_ID_NUMBER"
        return
    assert check_character(parsed.value[:17]) == parsed.value[17]
