"""Whether the rest keeps up (bench/backlog.py): the verdict on the sampled backlog, and how often
each run samples it."""

from __future__ import annotations

import pytest

from bench.__main__ import FULL, QUICK, SAMPLES_PER_PHASE, sampling_interval_s
from bench.backlog import Sample, keeps_up, next_due


def samples(totals: list[int], every_s: float = 1.0) -> list[Sample]:
    return [Sample(at_s=i * every_s, backlog={"tax": total}, lag={"tax": 0}) for i, total in enumerate(totals)]


def test_a_backlog_that_stays_where_it_started_keeps_up():
    ok, why = keeps_up(samples([300, 250, 320, 280, 310, 290, 330, 300, 270]))
    assert ok
    assert why == "waiting work first third max 320, last third mean 300"


def test_a_backlog_that_grows_through_the_run_does_not_keep_up():
    ok, why = keeps_up(samples([100, 300, 500, 700, 900, 1100, 1300, 1500, 1700]))
    assert not ok
    assert why == "waiting work first third max 500, last third mean 1500"


def test_a_small_amount_in_flight_is_not_growth():
    assert keeps_up(samples([0, 10, 20, 150, 160, 180]))[0]


@pytest.mark.parametrize("plan", [FULL, QUICK], ids=lambda plan: plan.name)
def test_each_judged_phase_gets_enough_samples_for_its_thirds_to_mean_something(plan):
    every = sampling_interval_s(plan)
    for seconds in (plan.duration_s, plan.rate_duration_s):
        assert seconds / every >= SAMPLES_PER_PHASE


def test_the_full_run_samples_every_two_seconds_the_short_one_more_often():
    assert sampling_interval_s(FULL) == 2.0
    assert sampling_interval_s(QUICK) == pytest.approx(0.4)


def test_samples_are_taken_the_interval_apart_however_long_each_takes():
    assert next_due(10.0, 0.4, now=10.15) == pytest.approx(10.4)  # the last sample took 0.15 s
    assert next_due(10.4, 0.4, now=10.55) == pytest.approx(10.8)


def test_a_sample_slower_than_the_interval_is_followed_at_once_not_by_a_burst():
    assert next_due(10.0, 0.4, now=10.9) == 10.9
    assert next_due(10.9, 0.4, now=10.95) == pytest.approx(11.3)
