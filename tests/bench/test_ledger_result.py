"""A ledger's figures from several runs of each operation (bench/ledgers.py, ``Runs``): the median
run's events per second is the one judged, printed with the slowest run's and the fastest's."""

from __future__ import annotations

import pytest

from bench.ledgers import LedgerResult, Runs


def _result(rebuild_s: tuple[float, ...], verify_s: tuple[float, ...]) -> LedgerResult:
    return LedgerResult("tax", 1_000_000, 9_000, 50.0, Runs(1_000_000, rebuild_s), Runs(1_000_000, verify_s), True)


def test_the_median_run_is_the_figure_and_one_slow_run_does_not_move_it() -> None:
    result = _result((4.0, 20.0, 5.0), (2.5, 3.0, 4.0))

    assert result.rebuild.per_s == 200_000
    assert result.rebuild.span == (50_000, 250_000)
    assert result.verify.per_s == pytest.approx(333_333.3, abs=0.1)
    assert result.verify.span == (250_000, 400_000)


def test_one_fast_run_does_not_make_a_slow_ledger_meet_a_target() -> None:
    result = _result((1.0, 5.5, 6.0), (3.5, 3.5, 0.5))

    assert result.rebuild.per_s < 200_000 and result.rebuild.span[1] == 1_000_000
    assert result.verify.per_s < 300_000 and result.verify.span[1] == 2_000_000


def test_a_single_run_is_its_own_median_slowest_and_fastest() -> None:
    result = _result((5.0,), (2.0,))

    assert result.rebuild.per_s == 200_000 and result.rebuild.span == (200_000, 200_000)
    assert result.verify.per_s == 500_000 and result.verify.span == (500_000, 500_000)
