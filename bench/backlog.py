"""Whether the rest keeps up: the relays' outbox backlog and the consumers' lag, sampled while the
load runs, and how long both take to drain once it stops."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from pension_shared.observability import KafkaOffsets, consumer_lag
from pension_shared.schema import outbox

from bench.cluster import Cluster

SUBSCRIPTIONS = {
    "account": ("pension.fund-account", "pension.payout", "pension.tax"),
    "fund-account": ("pension.account", "pension.payout"),
    "tax": ("pension.account", "pension.fund-account", "pension.payout"),
    "payout": ("pension.account", "pension.fund-account"),
}


@dataclass
class Sample:
    at_s: float
    backlog: dict[str, int]
    lag: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.backlog.values()) + sum(self.lag.values())


@dataclass
class Sampler:
    cluster: Cluster
    interval_s: float = 2.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._engines = {s: sa.create_engine(url, pool_size=1) for s, url in self.cluster.database_urls.items()}
        self._offsets = KafkaOffsets(self.cluster.kafka)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()

    def sample(self) -> Sample:
        backlog = {}
        for service, engine in self._engines.items():
            with engine.connect() as conn:
                backlog[service] = conn.execute(
                    sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                ).scalar_one()
        groups = {self._group(service): [self.cluster.prefix + t for t in topics]
                  for service, topics in SUBSCRIPTIONS.items()}
        behind = consumer_lag(self._offsets, groups)
        lag = {service: sum(sum(partitions.values()) for partitions in behind[self._group(service)].values())
               for service in SUBSCRIPTIONS}
        return Sample(time.perf_counter() - self._t0, backlog, lag)

    def _group(self, service: str) -> str:
        return f"{self.cluster.prefix.rstrip('.')}.{service}"

    def start(self) -> None:
        self.samples = []
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        due = time.perf_counter()
        while True:
            due = next_due(due, self.interval_s, time.perf_counter())
            if self._stop.wait(due - time.perf_counter()):
                return
            try:
                self.samples.append(self.sample())
            except Exception:  # a missed sample is not a failed benchmark
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def drain_s(self, timeout_s: float = 300) -> float | None:
        """Seconds until nothing is waiting in any outbox or behind any consumer."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout_s:
            if self.sample().total == 0:
                return time.perf_counter() - started
            time.sleep(0.25)
        return None

    def close(self) -> None:
        self._offsets.close()
        for engine in self._engines.values():
            engine.dispose()


def next_due(due: float, interval_s: float, now: float) -> float:
    """When the next sample is taken: ``interval_s`` after the last was due, so that samples are
    that far apart however long each takes (a sample takes about 0.15 s); at once when a slow one
    has already passed that time, never in a burst to catch up."""
    return max(due + interval_s, now)


def keeps_up(samples: list[Sample]) -> tuple[bool, str]:
    """No growing backlog: the waiting work at the end of the run is not above what it was in
    its first third (allowing a small constant amount in flight)."""
    if len(samples) < 3:
        return True, "too few samples"
    third = max(len(samples) // 3, 1)
    early = max(s.total for s in samples[:third])
    late = sum(s.total for s in samples[-third:]) / third
    grew = late > max(early * 1.5, 200)
    return not grew, f"waiting work first third max {early}, last third mean {late:.0f}"
