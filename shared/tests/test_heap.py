"""The collector settings a service process takes once it is built (pension_shared.heap)."""

import gc

import pytest

from pension_shared.heap import YOUNGEST_THRESHOLD, freeze_what_startup_built


@pytest.fixture
def collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_what_startup_built_is_out_of_the_collector_s_reach(collector) -> None:
    built = [{"kept": n} for n in range(1000)]  # what a process keeps for its life
    freeze_what_startup_built()
    assert gc.get_freeze_count() >= len(built)
    collected = {id(o) for generation in range(3) for o in gc.get_objects(generation=generation)}
    assert not any(id(item) in collected for item in built)


def test_the_youngest_generation_grows_larger_and_the_older_ones_keep_their_thresholds(collector) -> None:
    _, middle, oldest = gc.get_threshold()
    freeze_what_startup_built()
    assert gc.get_threshold() == (YOUNGEST_THRESHOLD, middle, oldest)


def test_cycles_made_afterwards_are_still_collected(collector) -> None:
    freeze_what_startup_built()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
