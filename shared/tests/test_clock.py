from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pension_shared.clock import (
    EARLIEST, LATEST, SHANGHAI, FixedClock, SettableClock, WallClock, business_date, business_year, parse_rfc3339,
    rfc3339, within_business_years,
)

CST = timezone(timedelta(hours=8))


def test_half_an_hour_before_midnight_in_shanghai_is_still_the_old_year() -> None:
    moment = datetime(2025, 12, 31, 23, 30, tzinfo=CST)
    assert business_year(moment) == 2025
    assert business_date(moment) == date(2025, 12, 31)


def test_ten_minutes_after_midnight_in_shanghai_is_the_new_year() -> None:
    moment = datetime(2026, 1, 1, 0, 10, tzinfo=CST)
    assert business_year(moment) == 2026
    assert business_date(moment) == date(2026, 1, 1)


def test_a_utc_instant_after_16_00_is_already_the_next_day_in_shanghai() -> None:
    moment = datetime(2025, 12, 31, 16, 10, tzinfo=timezone.utc)
    assert business_year(moment) == 2026
    assert business_date(moment) == date(2026, 1, 1)
    assert business_year(datetime(2025, 12, 31, 15, 59, 59, tzinfo=timezone.utc)) == 2025
    assert business_year(datetime(2025, 12, 31, 16, 0, 0, tzinfo=timezone.utc)) == 2026


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        business_date(datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        rfc3339(datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        parse_rfc3339("2025-01-01T00:00:00")


def test_rfc3339_writes_shanghai_time_and_parses_back() -> None:
    moment = datetime(2025, 8, 15, 1, 0, tzinfo=timezone.utc)
    text = rfc3339(moment)
    assert text == "2025-08-15T09:00:00.000000+08:00"
    assert parse_rfc3339(text) == moment
    assert parse_rfc3339("2025-08-15T01:00:00Z") == moment


def test_wall_clock_is_now_in_shanghai() -> None:
    before = datetime.now(timezone.utc)
    now = WallClock().now()
    after = datetime.now(timezone.utc)
    assert before <= now <= after
    assert now.utcoffset() == timedelta(hours=8)


def test_fixed_clock_stands_still_until_moved() -> None:
    clock = FixedClock(datetime(2025, 12, 31, 15, 0, tzinfo=timezone.utc))
    assert clock.now() == clock.now() == datetime(2025, 12, 31, 23, 0, tzinfo=CST)
    assert clock.now().tzinfo == SHANGHAI
    assert business_year(clock.advance(timedelta(hours=1))) == 2026
    assert clock.set(datetime(2030, 1, 1, tzinfo=CST)) == datetime(2030, 1, 1, tzinfo=CST)


class FakeWall:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_settable_clock_runs_at_wall_speed_from_the_instant_it_was_set_to() -> None:
    wall = FakeWall(datetime(2024, 3, 1, tzinfo=timezone.utc))
    clock = SettableClock(wall=wall)
    assert clock.now() == wall.moment
    target = datetime(2025, 12, 31, 23, 59, tzinfo=CST)
    assert clock.set(target) == target
    wall.moment += timedelta(minutes=2)
    assert clock.now() == target + timedelta(minutes=2)
    assert business_year(clock.now()) == 2026
    assert clock.now().tzinfo == SHANGHAI


def test_settable_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        SettableClock().set(datetime(2025, 1, 1))


def test_settable_clock_refuses_times_outside_the_years_the_platform_holds() -> None:
    clock = SettableClock()
    clock.set(datetime(2025, 8, 15, 9, tzinfo=CST))
    for moment in (datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=12))),
                   datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), LATEST, EARLIEST - timedelta(microseconds=1)):
        assert not within_business_years(moment)
        with pytest.raises(ValueError):
            clock.set(moment)
    assert clock.now().date() == date(2025, 8, 15)
    assert within_business_years(EARLIEST) and within_business_years(LATEST - timedelta(microseconds=1))
    assert clock.set(EARLIEST) - EARLIEST < timedelta(seconds=5)


def test_two_settable_clocks_share_the_business_time_through_their_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "clock.json"
    wall = FakeWall(datetime(2024, 3, 1, tzinfo=timezone.utc))
    first, second = SettableClock(path, wall=wall), SettableClock(path, wall=wall)
    target = datetime(2026, 1, 1, 0, 10, tzinfo=CST)
    first.set(target)
    assert second.now() == target
    wall.moment += timedelta(seconds=30)
    assert second.now() == target + timedelta(seconds=30)
    # and the other way round
    second.set(datetime(2027, 6, 1, tzinfo=CST))
    assert first.now() == datetime(2027, 6, 1, tzinfo=CST)


def test_a_clock_opened_later_reads_the_time_set_before_it_started(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    wall = FakeWall(datetime(2024, 3, 1, tzinfo=timezone.utc))
    SettableClock(path, wall=wall).set(datetime(2030, 5, 5, tzinfo=CST))
    assert SettableClock(path, wall=wall).now() == datetime(2030, 5, 5, tzinfo=CST)


def test_every_setting_is_seen_by_the_other_clock_even_in_quick_succession(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    wall = FakeWall(datetime(2024, 3, 1, tzinfo=timezone.utc))
    setter, reader = SettableClock(path, wall=wall), SettableClock(path, wall=wall)
    for day in range(1, 60):
        target = datetime(2025, 1, 1, tzinfo=CST) + timedelta(days=day)
        setter.set(target)
        assert reader.now() == target, f"the reader missed setting #{day}"
