"""When the bench counts a rate as taken (bench.workload.OpenLoop.took_the_rate): the 70 % rate of
1b and the 300/s of the voucher target are met only if the system took what was offered."""

from __future__ import annotations

import pytest

from bench.workload import EndToEnd, OpenLoop


def _run(**counts: int) -> OpenLoop:
    return OpenLoop(offered_per_s=300, duration_s=30, **counts)


def test_a_rate_every_request_of_which_was_accepted_was_taken() -> None:
    assert _run(sent=9_000, accepted=9_000).took_the_rate


def test_a_few_refusals_for_the_business_reasons_still_take_the_rate() -> None:
    assert _run(sent=9_000, accepted=8_910, refused=90).took_the_rate


@pytest.mark.parametrize("counts", [
    {"sent": 9_000, "accepted": 8_909, "refused": 91},  # fewer than 99 % accepted
    {"sent": 5_305, "accepted": 5_305, "not_sent": 3_695},  # saturated: the rest never sent
    {"sent": 9_000, "accepted": 8_999, "errors": 1},  # one unanswered
])
def test_a_rate_the_system_did_not_keep_up_with_was_not_taken(counts: dict[str, int]) -> None:
    assert not _run(**counts).took_the_rate


def test_the_end_to_end_run_is_judged_the_same_way() -> None:
    assert not EndToEnd(offered_per_s=300, duration_s=30, sent=5_305, accepted=5_305, not_sent=3_695).took_the_rate
