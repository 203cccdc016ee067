"""Money: integer fen inside, decimal strings in yuan at the edges (INTERFACES.md §1)."""

from __future__ import annotations

import re

FEN_PER_YUAN = 100
MAX_AMOUNT_FEN = 10**12 * FEN_PER_YUAN

_YUAN = re.compile(r"(0|[1-9][0-9]{0,12})\.([0-9]{2})")  # 13 digits: 10^12 yuan, the most there is


class InvalidAmount(ValueError):
    """An amount that is not a yuan string with exactly two decimals within bounds."""


def parse_yuan(text: str, *, allow_zero: bool = False) -> int:
    """Parse ``"1200.00"`` into 120000 fen. Money is "a JSON string in yuan with exactly two
    decimals" (INTERFACES.md §1): refuses floats, signs, exponents, spaces, fewer or more than
    two decimals, zero (unless allowed) and amounts above 10^12 yuan."""
    if not isinstance(text, str):
        raise InvalidAmount("amount must be a string of yuan with two decimals, such as \"1200.00\"")
    match = _YUAN.fullmatch(text)  # not match(): "$" would also accept a trailing newline
    if match is None:
        raise InvalidAmount(f"{text!r} is not an amount in yuan with exactly two decimals, such as \"1200.00\"")
    whole, decimals = match.groups()
    fen = int(whole) * FEN_PER_YUAN + int(decimals)
    if fen > MAX_AMOUNT_FEN:
        raise InvalidAmount("amount exceeds 10^12 yuan")
    if fen == 0 and not allow_zero:
        raise InvalidAmount("amount must be positive")
    return fen


def format_fen(fen: int) -> str:
    """120000 → ``"1200.00"``; negative amounts keep their sign."""
    sign = "-" if fen < 0 else ""
    whole, rest = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{rest:02d}"


def percent_half_up(fen: int, numerator: int, denominator: int) -> int:
    """``fen * numerator / denominator`` rounded half up to the fen, in integers only."""
    if fen < 0:
        raise ValueError("percent_half_up expects a non-negative amount")
    quotient, remainder = divmod(fen * numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)
