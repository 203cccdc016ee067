"""The business clock (INTERFACES.md §1): every rule that depends on "now" reads it.

In production it is the wall clock. Outside production an operator may set it; the setting is
kept in a small file so that every process of the platform on this machine sees the same time,
and it survives restarts. Calendar arithmetic is in Asia/Shanghai."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol
from zoneinfo import ZoneInfo

import orjson

SHANGHAI = ZoneInfo("Asia/Shanghai")


EARLIEST = datetime(2000, 1, 1, tzinfo=SHANGHAI)
LATEST = datetime(3000, 1, 1, tzinfo=SHANGHAI)
"""The business clock may be set from ``EARLIEST`` up to, not including, ``LATEST``: the years
the platform's records can hold (a voucher's year is 2000-2999), with room for the calendar
arithmetic of schedules and tax years, which would otherwise overflow ``datetime`` near the
year 9999 and stop every service reading the clock."""


def within_business_years(moment: datetime) -> bool:
    """Whether the business clock may be set to this aware instant."""
    try:
        return EARLIEST <= moment < LATEST
    except OverflowError:  # an offset taking it past what datetime can hold
        return False


class BusinessClock(Protocol):
    def now(self) -> datetime: ...


def business_date(moment: datetime) -> date:
    """The calendar day in Asia/Shanghai of an aware instant."""
    if moment.tzinfo is None:
        raise ValueError("business time must be timezone-aware")
    return moment.astimezone(SHANGHAI).date()


def business_year(moment: datetime) -> int:
    return business_date(moment).year


def rfc3339(moment: datetime) -> str:
    """An aware instant as RFC 3339 in Asia/Shanghai, e.g. ``2025-08-15T09:00:00.000000+08:00``."""
    if moment.tzinfo is None:
        raise ValueError("business time must be timezone-aware")
    return moment.astimezone(SHANGHAI).isoformat(timespec="microseconds")


def parse_rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


class WallClock:
    """Production: the system's time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc).astimezone(SHANGHAI)


@dataclass(frozen=True)
class _Shift:
    offset: timedelta


class SettableClock:
    """A clock an operator can move: it runs at wall speed from the instant it was set to.

    The shift from wall time is persisted to ``path`` (when given) and re-read when the file
    changes, so several processes share one business time."""

    def __init__(self, path: Path | None = None, wall: Callable[[], datetime] | None = None) -> None:
        self._path = path
        self._wall = wall or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._shift = _Shift(timedelta(0))
        self._seen_mtime: int | None = None

    def now(self) -> datetime:
        self._refresh()
        return (self._wall() + self._shift.offset).astimezone(SHANGHAI)

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("business time must be timezone-aware")
        if not within_business_years(moment):
            raise ValueError(f"business time must be from {EARLIEST.date()} up to {LATEST.date()} (Asia/Shanghai)")
        shift = _Shift(moment - self._wall())
        with self._lock:
            self._shift = shift
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._path.with_suffix(".tmp")
                tmp.write_bytes(orjson.dumps({"offset_us": _micros(shift.offset)}))
                os.replace(tmp, self._path)
                self._seen_mtime = self._path.stat().st_mtime_ns
        return self.now()

    def _refresh(self) -> None:
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._seen_mtime:
            return
        with self._lock:
            stored = orjson.loads(self._path.read_bytes())
            self._shift = _Shift(timedelta(microseconds=stored["offset_us"]))
            self._seen_mtime = mtime


class FixedClock:
    """Tests: a clock that stands still until moved."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self) -> datetime:
        return self._moment.astimezone(SHANGHAI)

    def set(self, moment: datetime) -> datetime:
        self._moment = moment
        return self.now()

    def advance(self, delta: timedelta) -> datetime:
        self._moment += delta
        return self.now()


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
