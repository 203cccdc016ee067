"""Product units: integer micro-units (10^-6 of a unit) inside and in events, decimal strings
with up to six decimals at the edges (``"1000.5"`` → 1_000_500_000)."""

from __future__ import annotations

import re

MICRO_PER_UNIT = 1_000_000
MAX_UNITS_MICRO = 10**15 * MICRO_PER_UNIT

_UNITS = re.compile(r"(0|[1-9][0-9]{0,15})(?:\.([0-9]{1,6}))?")  # 16 digits: 10^15 units, the most there is


class InvalidUnits(ValueError):
    """Units that are not a positive decimal string with at most six decimals."""


def parse_units(text: str) -> int:
    if not isinstance(text, str):
        raise InvalidUnits('units must be a decimal string such as "1000.50"')
    match = _UNITS.fullmatch(text)
    if match is None:
        raise InvalidUnits(f"{text!r} is not a number of units with at most six decimals")
    micro = int(match.group(1)) * MICRO_PER_UNIT + int((match.group(2) or "").ljust(6, "0"))
    if micro == 0:
        raise InvalidUnits("units must be positive")
    if micro > MAX_UNITS_MICRO:
        raise InvalidUnits("units exceed 10^15")
    return micro


def format_units(micro: int) -> str:
    """1_000_500_000 → ``"1000.500000"``: always six decimals, so equal holdings read alike."""
    whole, rest = divmod(micro, MICRO_PER_UNIT)
    return f"{whole}.{rest:06d}"


def units_for_yuan_amount(fen: int) -> int:
    """Units bought at a price of one yuan a unit: the default when a purchase names no units."""
    return fen * (MICRO_PER_UNIT // 100)
