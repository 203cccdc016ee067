"""The 18-character resident identity number (GB 11643-1999): region, date of birth,
sequence and an ISO 7064 MOD 11-2 check character."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from pension_shared.errors import DomainError

_SHAPE = re.compile(r"^[1-9][0-9]{16}[0-9X]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


class InvalidIdNumber(DomainError):
    code = "INVALID_ID_NUMBER"


@dataclass(frozen=True)
class IdNumber:
    value: str

    @property
    def region(self) -> str:
        return self.value[:6]

    @property
    def date_of_birth(self) -> date:
        return date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))


def check_character(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def parse_id_number(raw: str, *, today: date) -> IdNumber:
    value = raw.strip().upper()
    if not _SHAPE.match(value):
        raise InvalidIdNumber("an ID number is 17 digits and a check digit or X")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("the ID number does not hold a valid date of birth") from exc
    if born.year < 1900 or born > today:
        raise InvalidIdNumber("the date of birth in the ID number is out of range")
    if check_character(value[:17]) != value[17]:
        raise InvalidIdNumber("the check digit of the ID number is wrong")
    return IdNumber(value)
