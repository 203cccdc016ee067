"""The cyclic garbage collector in a long-running service process.

A process imports and builds, once, everything it keeps for its life: modules, the FastAPI app
and its pydantic schemas, SQLAlchemy's tables and compiled statements, the Kafka client. Left
to the collector, every full collection walks all of it again, while the garbage a request or a
batch makes is nearly always freed by reference counting as soon as it is done with. So, once
the process is built: collect what startup left, move the rest out of the collector's reach
(``gc.freeze``), and let the youngest generation grow larger before it is collected, so that
short-lived objects are gone before a collection would promote them."""

from __future__ import annotations

import gc

YOUNGEST_THRESHOLD = 10_000
"""Allocations (less deallocations) of tracked objects before the youngest generation is
collected; CPython's default is 700."""


def freeze_what_startup_built() -> None:
    """Call once the process has built what it keeps, right before it starts serving."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
