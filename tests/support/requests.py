"""Request bodies and polling helpers shared by the cross-service tests."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from pension_account.domain.id_number import check_character

T = TypeVar("T")


def random_id_number(born: str = "19800101") -> str:
    """A valid 18-character ID number with a random region and sequence."""
    first17 = f"{random.randint(110000, 659999)}{born}{random.randint(0, 999):03d}"
    return first17 + check_character(first17)


def registration(id_number: str | None = None, *, region: str = "410100", bank: str = "ICBC") -> dict:
    return {
        "id_number": id_number or random_id_number(),
        "name": "张三",
        "insurance_type": "employee",
        "insured_region": region,
        "ss_card_account": {"bank_code": bank, "account_number": f"6222{random.randint(10**11, 10**12 - 1)}"},
        "channel": "bank",
    }


def eventually(probe: Callable[[], T | None], *, timeout_s: float = 30.0, interval_s: float = 0.1) -> T:
    """Poll until ``probe`` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"not reached within {timeout_s} s (last: {last!r})")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
