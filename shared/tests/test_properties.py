"""Property tests of the domain rules every service leans on: money at the edges, rounding
half up, and the business calendar of Asia/Shanghai."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pension_shared.clock import SHANGHAI, business_date, business_year
from pension_shared.money import MAX_AMOUNT_FEN, InvalidAmount, format_fen, parse_yuan, percent_half_up

PROPERTIES = settings(max_examples=300, deadline=None, database=None)
CANONICAL = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")


@PROPERTIES
@given(st.integers(min_value=1, max_value=MAX_AMOUNT_FEN))
def test_every_amount_formatted_in_yuan_parses_back_to_the_same_fen(fen: int) -> None:
    assert parse_yuan(format_fen(fen)) == fen


@PROPERTIES
@given(st.integers(min_value=0, max_value=MAX_AMOUNT_FEN))
def test_zero_parses_only_where_it_is_allowed(fen: int) -> None:
    assert parse_yuan(format_fen(fen), allow_zero=True) == fen
    if fen == 0:
        with pytest.raises(InvalidAmount):
            parse_yuan(format_fen(fen))


@PROPERTIES
@given(st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789.-+eE_ ", max_size=20),
    st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{0,4})?\Z"),
    st.integers(min_value=13, max_value=60_000).map(lambda digits: "1" * digits),  # past 10^12 yuan
))
def test_a_text_is_either_refused_as_an_invalid_amount_or_read_exactly(text: str) -> None:
    try:
        fen = parse_yuan(text)
    except InvalidAmount:
        assert not (CANONICAL.fullmatch(text) and 0 < Decimal(text) * 100 <= MAX_AMOUNT_FEN)
        return
    assert CANONICAL.fullmatch(text), f"{text!r} was accepted"
    assert Decimal(text) * 100 == fen and 1 <= fen <= MAX_AMOUNT_FEN


@PROPERTIES
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=-10**6, max_value=10**6),
       st.from_regex(r"\A[0-9]{3,6}\Z"))
def test_negative_amounts_and_more_than_two_decimals_are_refused(whole: int, signed: int, decimals: str) -> None:
    for text in (f"{whole}.{decimals}", f"-{abs(signed)}.00", f"-{whole}", f"{signed}e2", f"{whole}.", f".{decimals[:2]}"):
        with pytest.raises(InvalidAmount):
            parse_yuan(text)


@PROPERTIES
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none() | st.booleans())
def test_an_amount_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_yuan(value)  # type: ignore[arg-type]


@PROPERTIES
@given(st.integers(min_value=0, max_value=MAX_AMOUNT_FEN), st.integers(min_value=0, max_value=1000),
       st.integers(min_value=1, max_value=10_000))
def test_percent_half_up_rounds_as_decimal_round_half_up(fen: int, numerator: int, denominator: int) -> None:
    with localcontext() as exact:
        exact.prec = 60
        expected = (Decimal(fen) * numerator / denominator).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert percent_half_up(fen, numerator, denominator) == int(expected)


@PROPERTIES
@given(st.integers(min_value=2000, max_value=2100), st.integers(min_value=-86_400, max_value=86_400))
def test_the_business_year_turns_at_midnight_in_shanghai_whatever_the_offset_it_is_given_in(
    year: int, seconds: int,
) -> None:
    new_year = datetime.combine(date(year, 1, 1), time(0), tzinfo=SHANGHAI)
    moment = new_year + timedelta(seconds=seconds)
    for shown_in in (timezone.utc, SHANGHAI, timezone(timedelta(hours=-10)), timezone(timedelta(hours=14))):
        assert business_year(moment.astimezone(shown_in)) == (year if seconds >= 0 else year - 1)


@PROPERTIES
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)))
def test_the_business_date_is_the_calendar_day_in_shanghai(moment: datetime) -> None:
    assert business_date(moment) == (moment + timedelta(hours=8)).date()
