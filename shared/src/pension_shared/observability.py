"""What a running service tells its operators: Prometheus metrics at ``/metrics``, readiness that
includes the broker, and structured JSON logs carrying the request's correlation id.

Metrics (one registry per app, so several apps in one process never collide):

- ``pension_http_requests_total`` and ``pension_http_request_duration_seconds`` by method, route
  template and status;
- ``pension_events_appended_total`` by service (counted by the event store as it appends);
- ``pension_relay_backlog`` (outbox rows not yet published), ``pension_consumer_lag`` by group,
  topic and partition, and ``pension_dlq_depth`` (letters parked) by topic: gauges computed at
  scrape time from the database and the log."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from pension_shared.messaging import dlq_topic
from pension_shared.problems import correlation_id

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pension_shared.runtime import ServiceContext, Transport

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
PROBE_CACHE_S = 5.0


# -- the log's positions ---------------------------------------------------------------------


class KafkaOffsets:
    """End offsets and a group's committed offsets on Kafka, without joining any group."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self._timeout_ms = int(timeout_s * 1000)
        self._consumer: Any = None
        self._admin: Any = None

    def consumer(self) -> Any:
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                client_id="pension-operator", request_timeout_ms=max(self._timeout_ms, 30_001),
            )
        return self._consumer

    def partitions(self, topic: str) -> list:
        from kafka import TopicPartition

        return [TopicPartition(topic, p) for p in sorted(self.consumer().partitions_for_topic(topic) or ())]

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.ends([topic]).get(topic, {})

    def ends(self, topics: Sequence[str]) -> dict[str, dict[int, int]]:
        """Each topic's end offsets by partition, asked of the broker in one request for them all
        (a topic unknown to it: none)."""
        partitions = [tp for topic in topics for tp in self.partitions(topic)]
        found: dict[str, dict[int, int]] = {topic: {} for topic in topics}
        if partitions:
            for tp, end in self.consumer().end_offsets(partitions).items():
                found[tp.topic][tp.partition] = end
        return found

    def committed(self, group_id: str, topic: str) -> dict[int, int]:
        return self.group_committed(group_id).get(topic, {})

    def group_committed(self, group_id: str) -> dict[str, dict[int, int]]:
        """The group's committed offsets, by topic and partition, in one request."""
        from kafka.admin import KafkaAdminClient

        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="pension-operator",
                                           request_timeout_ms=self._timeout_ms)
        if hasattr(self._admin, "list_group_offsets"):  # kafka-python 3
            offsets = self._admin.list_group_offsets({group_id: None}).get(group_id, {})
        else:
            offsets = self._admin.list_consumer_group_offsets(group_id)
        found: dict[str, dict[int, int]] = {}
        for tp, meta in offsets.items():
            if meta.offset >= 0:
                found.setdefault(tp.topic, {})[tp.partition] = meta.offset
        return found

    def reachable(self) -> bool:
        self.consumer().topics()
        return True

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                client.close()
        self._consumer = self._admin = None


def log_offsets(transport: "Transport") -> Any:
    """Something with ``ends(topics)`` and ``group_committed(group)`` (``consumer_lag`` reads
    them) and ``end_offsets(topic)`` and ``committed(group, topic)`` for this transport."""
    embedded = getattr(transport, "log", None)
    if embedded is not None:
        return embedded
    return KafkaOffsets(transport.bootstrap, timeout_s=PROBE_TIMEOUT_S)  # type: ignore[attr-defined]


def consumer_lag(offsets: Any, groups: Mapping[str, Sequence[str]]) -> dict[str, dict[str, dict[int, int]]]:
    """How many records each group has not consumed yet, for each topic it reads, by partition:
    the end offsets of every topic asked once for them all, and each group's committed offsets
    once (asked topic by topic, a sample of four consumers' lag took 20 requests of the broker
    rather than 5, and 20-30 ms of its CPU rather than 5-6)."""
    ends = offsets.ends(sorted({topic for topics in groups.values() for topic in topics}))
    lag: dict[str, dict[str, dict[int, int]]] = {}
    for group, topics in groups.items():
        committed = offsets.group_committed(group)
        lag[group] = {topic: {partition: max(end - committed.get(topic, {}).get(partition, 0), 0)
                              for partition, end in ends[topic].items()} for topic in topics}
    return lag


def _bounded(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``fn`` but give up waiting after ``timeout_s`` (a probe must answer quickly)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)


class BrokerProbe:
    """Is the event log reachable? Answered within ``PROBE_TIMEOUT_S`` and cached briefly, so a
    readiness check never hangs on a broker outage nor hammers the broker."""

    def __init__(self, transport: "Transport") -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._reachable = False

    def reachable(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked_at < PROBE_CACHE_S:
                return self._reachable
            try:
                self._reachable = bool(_bounded(self._check, PROBE_TIMEOUT_S))
            except (FutureTimeout, Exception):  # readiness reports, it does not raise
                self._reachable = False
            self._checked_at = time.monotonic()
            return self._reachable

    def _check(self) -> bool:
        embedded = getattr(self._transport, "log", None)
        if embedded is not None:
            import sqlalchemy as sa

            with embedded.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self._transport.bootstrap, client_id="pension-ready",  # type: ignore[attr-defined]
                                 request_timeout_ms=int(PROBE_TIMEOUT_S * 1000))
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True


# -- metrics ---------------------------------------------------------------------------------


class _ScrapeTimeGauges:
    """Relay backlog, consumer lag and DLQ depth, read when Prometheus scrapes."""

    def __init__(self, contexts: Sequence["ServiceContext"]) -> None:
        self._contexts = contexts
        self._offsets: Any = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        backlog = GaugeMetricFamily("pension_relay_backlog", "Outbox rows not yet published", labels=["service"])
        lag = GaugeMetricFamily("pension_consumer_lag", "Records not yet consumed by a group",
                                labels=["group", "topic", "partition"])
        depth = GaugeMetricFamily("pension_dlq_depth", "Letters parked in a dead-letter topic", labels=["topic"])
        for ctx in self._contexts:
            try:
                backlog.add_metric([ctx.definition.name], _bounded(lambda c=ctx: _backlog(c), PROBE_TIMEOUT_S))
            except Exception:  # a scrape reports what it can
                log.warning("relay backlog of %s unavailable", ctx.definition.name)
        try:
            _bounded(lambda: self._log_gauges(lag, depth), PROBE_TIMEOUT_S * 2)
        except Exception:
            log.warning("consumer lag and DLQ depth unavailable (is the broker reachable?)")
        yield from (backlog, lag, depth)

    def _log_gauges(self, lag: GaugeMetricFamily, depth: GaugeMetricFamily) -> None:
        if self._offsets is None:
            self._offsets = log_offsets(self._contexts[0].transport)
        offsets = self._offsets
        groups = {ctx.consumer_group: [ctx.settings.topic_prefix + t for t in ctx.definition.subscribes_to]
                  for ctx in self._contexts}
        for group, topics in consumer_lag(offsets, groups).items():
            for topic, partitions in topics.items():
                for partition, behind in sorted(partitions.items()):
                    lag.add_metric([group, topic, str(partition)], behind)
        for topic, ends in offsets.ends([dlq_topic(ctx.store.topic) for ctx in self._contexts]).items():
            depth.add_metric([topic], sum(ends.values()))


def _backlog(ctx: "ServiceContext") -> int:
    from pension_shared.relay import OutboxRelay

    return OutboxRelay(ctx.engine, publisher=None).backlog()  # type: ignore[arg-type]


class _PureMiddleware:
    """A pure ASGI middleware around ``call(app, scope, receive, send)``: no task or stream per
    request, unlike ``@app.middleware("http")``."""

    def __init__(self, app: Any, *, call: Callable) -> None:
        self.app, self.call = app, call

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self.call(self.app, scope, receive, send)


def install_observability(app: FastAPI, contexts: Sequence["ServiceContext"]) -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter("pension_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("pension_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
                        registry=registry)
    appended = Counter("pension_events_appended", "Events appended to the service's ledger", ["service"], registry=registry)
    registry.register(_ScrapeTimeGauges(contexts))
    for ctx in contexts:
        counter = appended.labels(ctx.definition.name)
        ctx.store.observers.append(lambda recorded, c=counter: c.inc(len(recorded)))

    async def measure(app: Any, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            labels = (scope["method"], template, str(status))
            requests.labels(*labels).inc()
            latency.labels(*labels).observe(time.perf_counter() - started)

    app.add_middleware(_PureMiddleware, call=measure)

    from fastapi.responses import Response  # here: only an API process imports the web framework

    # response_model=None: FastAPI would otherwise look the return annotation up among this
    # module's names, where Response is not.
    @app.get("/metrics", tags=["operations"], include_in_schema=False, response_model=None)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry


# -- logs ------------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the correlation id of the request or event being handled."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "correlation_id": correlation_id.get(), "thread": record.threadName,
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def configure_logging(*, structured: bool = True, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if structured else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
