import pytest

from pension_shared.money import MAX_AMOUNT_FEN, InvalidAmount, format_fen, parse_yuan, percent_half_up


@pytest.mark.parametrize(
    ("text", "fen"),
    [("1200.00", 120000), ("1200.50", 120050), ("0.01", 1), ("12000.00", 1200000),
     ("1000000000000.00", MAX_AMOUNT_FEN), ("3.07", 307)],
)
def test_parse_yuan_reads_decimal_yuan_strings_as_integer_fen(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("fen", [1, 9, 10, 99, 100, 101, 120000, 1234567, 10**9 + 7, MAX_AMOUNT_FEN])
def test_format_then_parse_round_trips_every_amount(fen: int) -> None:
    text = format_fen(fen)
    assert text.count(".") == 1 and len(text.split(".")[1]) == 2
    assert parse_yuan(text) == fen


def test_format_fen_always_writes_two_decimals_and_keeps_the_sign() -> None:
    assert format_fen(120000) == "1200.00"
    assert format_fen(5) == "0.05"
    assert format_fen(0) == "0.00"
    assert format_fen(-5) == "-0.05"
    assert format_fen(-123456) == "-1234.56"


@pytest.mark.parametrize(
    "text",
    ["1.234", "0.001", "-1", "-1.00", "+1", "0", "0.00", "0.0", "1000000000000.01", "1000000000001",
     "1e3", "1E3", " 1", "1 ", "1\n", "", ".5", "1.", "01", "1,000", "１２", "NaN", "inf", "0x10",
     "1200", "1200.5", " 1.00", "1.00 ", "1.00\n", "\t1.00", "01.00", "1000000000000"],
)
def test_parse_yuan_refuses_anything_but_a_positive_amount_with_exactly_two_decimals(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_yuan(text)


@pytest.mark.parametrize("value", [1.5, 1200.0, 12, None, b"12"])
def test_parse_yuan_refuses_non_strings_including_floats(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_yuan(value)  # type: ignore[arg-type]


def test_zero_is_accepted_only_when_allowed() -> None:
    assert parse_yuan("0.00", allow_zero=True) == 0
    with pytest.raises(InvalidAmount):
        parse_yuan("0", allow_zero=True)
    with pytest.raises(InvalidAmount, match="positive"):
        parse_yuan("0.00")


def test_the_upper_bound_is_ten_to_the_twelve_yuan() -> None:
    assert parse_yuan("999999999999.99") == MAX_AMOUNT_FEN - 1
    with pytest.raises(InvalidAmount, match="10\\^12"):
        parse_yuan("1000000000000.01")


def test_percent_half_up_of_typical_amounts() -> None:
    assert percent_half_up(1234567, 3, 100) == 37037  # 37037.01
    assert percent_half_up(120000, 3, 100) == 3600
    assert percent_half_up(0, 3, 100) == 0


def test_percent_half_up_rounds_exact_halves_up_and_everything_else_to_nearest() -> None:
    assert percent_half_up(50, 1, 100) == 1  # 0.50 -> 1
    assert percent_half_up(49, 1, 100) == 0  # 0.49 -> 0
    assert percent_half_up(150, 1, 100) == 2  # 1.50 -> 2
    assert percent_half_up(250, 1, 100) == 3  # 2.50 -> 3 (half up, not half even)
    assert percent_half_up(149, 1, 100) == 1
    assert percent_half_up(151, 1, 100) == 2
    assert percent_half_up(1234550, 3, 100) == 37037  # 37036.50 -> 37037
    assert percent_half_up(1234549, 3, 100) == 37036  # 37036.47 -> 37036
    assert percent_half_up(1, 1, 3) == 0
    assert percent_half_up(2, 1, 3) == 1


def test_percent_half_up_uses_integers_only_even_for_huge_amounts() -> None:
    fen = MAX_AMOUNT_FEN - 1
    assert percent_half_up(fen, 3, 100) == (fen * 3 + 50) // 100


def test_percent_half_up_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError):
        percent_half_up(-1, 3, 100)
