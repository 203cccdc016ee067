"""Composition mechanics shared by the four services: a service is described once by a
``ServiceDefinition`` and run as its API, its relay or its consumer, on either transport.

Production runs each role as its own process (``python -m pension_<service> api|relay|consumer|migrate``);
the embedded default runs all of them for all four services in one process. Only the API imports
the web framework, and only ``migrate`` imports alembic: the other roles start without them."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pension_shared.auth import TokenRegistry
from pension_shared.clock import BusinessClock, SettableClock, WallClock
from pension_shared.consumer import InboxConsumer, Policy
from pension_shared.db import create_engine
from pension_shared.envelope import Upcasters
from pension_shared.heap import freeze_what_startup_built
from pension_shared.idempotency import CommandRunner
from pension_shared.ledger import EventStore, Projection
from pension_shared.messaging import Publisher, Subscription, dlq_topic
from pension_shared.migrations import upgrade
from pension_shared.observability import BrokerProbe, configure_logging, install_observability
from pension_shared.lease import Lease
from pension_shared.positions import returned
from pension_shared.problems import render_domain_error
from pension_shared.read_positions import wait_until_applied
from pension_shared.relay import OutboxRelay
from pension_shared.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from pension_shared.web import Edge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    """The service's name in event types and sources: ``account``, ``fund-account``, ..."""
    migrations: Path
    projections: Callable[[], Sequence[Projection]]
    routers: Callable[["ServiceContext"], Sequence[APIRouter]]
    policies: Callable[["ServiceContext"], Mapping[str, Policy]] = lambda _ctx: {}
    subscribes_to: Sequence[str] = ()
    upcasters: Callable[[], Upcasters] = Upcasters
    jobs: Callable[["ServiceContext"], Sequence["Job"]] = lambda _ctx: ()
    """Work the service does on the business clock (due payouts, closing the tax year): each job
    runs ``run_once`` repeatedly; it must be idempotent and catch up after downtime."""

    @property
    def topic(self) -> str:
        return f"pension.{self.name}"


class Job(Protocol):
    name: str

    def run_once(self) -> int:
        """Do what is due now; return how much was done (0 when nothing was due)."""


def run_job(job: Job, stop: threading.Event, *, idle_s: float = 1.0, error_backoff_s: float = 2.0) -> None:
    while not stop.is_set():
        try:
            done = job.run_once()
        except Exception:  # a job must outlive a database or broker outage
            log.exception("job %s failed; retrying", job.name)
            stop.wait(error_backoff_s)
            continue
        if not done:
            stop.wait(idle_s)


class Transport:
    """Where events travel: Kafka in production, the embedded log in the embedded default."""

    def publisher(self, client_id: str) -> Publisher:
        raise NotImplementedError

    def subscription(self, *, group_id: str, topics: Sequence[str]) -> Subscription:
        raise NotImplementedError

    def prepare(self, topics: Sequence[str]) -> None:
        """Make sure the topics exist."""


class KafkaTransport(Transport):
    def __init__(self, bootstrap: str, *, partitions: int, replication_factor: int = 1) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.replication_factor = replication_factor

    def publisher(self, client_id: str) -> Publisher:
        from pension_shared.messaging.kafka import KafkaPublisher

        return KafkaPublisher(self.bootstrap, client_id=client_id)

    def subscription(self, *, group_id: str, topics: Sequence[str]) -> Subscription:
        from pension_shared.messaging.kafka import KafkaSubscription

        return KafkaSubscription(self.bootstrap, group_id=group_id, topics=topics, client_id=group_id)

    def prepare(self, topics: Sequence[str]) -> None:
        from pension_shared.messaging.kafka import ensure_topics

        ensure_topics(self.bootstrap, topics, partitions=self.partitions, replication_factor=self.replication_factor)


class EmbeddedTransport(Transport):
    def __init__(self, path: Path, *, partitions: int = 3) -> None:
        from pension_shared.messaging.embedded import EmbeddedLog

        self.log = EmbeddedLog(path, partitions=partitions)

    def publisher(self, client_id: str) -> Publisher:
        return self.log.publisher()

    def subscription(self, *, group_id: str, topics: Sequence[str]) -> Subscription:
        return self.log.subscribe(group_id=group_id, topics=topics)

    def prepare(self, topics: Sequence[str]) -> None:
        self.log.migrate()


def transport_from(settings: ServiceSettings) -> Transport:
    if settings.transport == "kafka":
        assert settings.kafka_bootstrap is not None
        return KafkaTransport(
            settings.kafka_bootstrap, partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )
    assert settings.embedded_log_path is not None
    return EmbeddedTransport(settings.embedded_log_path, partitions=min(settings.topic_partitions, 3))


def clock_from(settings: ServiceSettings) -> BusinessClock:
    return WallClock() if settings.production else SettableClock(settings.clock_file)


@dataclass
class ServiceContext:
    """Everything one service needs at run time; built once by ``build_context``."""

    definition: ServiceDefinition
    settings: ServiceSettings
    engine: Engine
    store: EventStore
    clock: BusinessClock
    tokens: TokenRegistry
    runner: CommandRunner
    transport: Transport
    extras: dict[str, object] = field(default_factory=dict)

    @cached_property
    def edge(self) -> Edge:
        """What the service's routes authenticate with; built by the API only."""
        from pension_shared.web import Edge

        return Edge(self.tokens, self.clock)

    def returned_position(self, conn: Connection) -> int:
        """The position a write's response carries: the last event this transaction appended,
        named with this service's ledger (``pension_shared.positions``)."""
        return returned(self.definition.name, self.store.head_position(conn))

    @cached_property
    def ledgers_read(self) -> dict[str, str]:
        """The ledger each topic this service consumes carries (``pension.fund-account``, with the
        deployment's prefix: the fund-account ledger)."""
        return {self.settings.topic_prefix + topic: topic.removeprefix("pension.") for topic in self.definition.subscribes_to}

    def wait_for(self, min_position: int | None, participant_id: str | None = None) -> bool:
        """Before a read given ``?min_position=``: wait, briefly, until this service has applied
        what that position names (``pension_shared.read_positions``); whether it has."""
        return wait_until_applied(self.engine, self.definition.name, self.ledgers_read.values(), min_position,
                                  participant_id)

    def wait_for_owner(self, min_position: int | None, owner: sa.Select, **params: Any) -> bool:
        """``wait_for`` of the participant ``owner`` (a statement with ``params``) names, for a read
        addressed by another id (a fund account, a withdrawal); read only when a position is given."""
        if min_position is None:
            return True
        with self.engine.connect() as conn:
            participant_id = conn.execute(owner, params).scalar_one_or_none()
        return self.wait_for(min_position, participant_id)

    @property
    def consumer_group(self) -> str:
        return f"{self.settings.consumer_group_prefix}.{self.definition.name}"

    def migrate(self) -> None:
        upgrade(self.definition.migrations, str(self.engine.url))

    def relay(self, *, after_publish: Callable | None = None) -> OutboxRelay:
        return OutboxRelay(
            self.engine, self.transport.publisher(f"{self.definition.name}-relay"),
            batch_size=self.settings.relay_batch_size, after_publish=after_publish,
        )

    def consumer(self) -> InboxConsumer:
        return InboxConsumer(
            name=self.consumer_group,
            engine=self.engine,
            subscription=self.transport.subscription(
                group_id=self.consumer_group,
                topics=[self.settings.topic_prefix + topic for topic in self.definition.subscribes_to],
            ),
            policies=self.definition.policies(self),
            dead_letters=self.transport.publisher(f"{self.definition.name}-dlq"),
            upcasters=self.store.upcasters,
            max_attempts=self.settings.consumer_max_attempts,
            store=self.store,
            ledgers=self.ledgers_read,
        )

    def ready(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # readiness reports, it does not raise
            return False


def build_context(
    definition: ServiceDefinition,
    settings: ServiceSettings,
    *,
    clock: BusinessClock | None = None,
    transport: Transport | None = None,
    tokens: TokenRegistry | None = None,
) -> ServiceContext:
    engine = create_engine(settings.database_url)
    upcasters = definition.upcasters()
    store = EventStore(
        service=definition.name, topic=settings.topic_prefix + definition.topic, projections=definition.projections(),
        upcasters=upcasters,
    )
    clock = clock or clock_from(settings)
    tokens = tokens or TokenRegistry.from_file(settings.tokens_file, development=not settings.production)
    return ServiceContext(
        definition=definition, settings=settings, engine=engine, store=store, clock=clock,
        tokens=tokens, runner=CommandRunner(engine, render_domain_error, wait_s=settings.unheard_wait_s),
        transport=transport or transport_from(settings),
    )


ALL_TOPICS = ("pension.account", "pension.fund-account", "pension.tax", "pension.payout")


def all_topics_with_dlq(prefix: str = "") -> list[str]:
    return [t for topic in ALL_TOPICS for t in (prefix + topic, dlq_topic(prefix + topic))]


def build_app(contexts: Sequence[ServiceContext], *, title: str) -> FastAPI:
    """One FastAPI app serving the routers of the given services (one in production, all four
    in the embedded default), with the shared edge: errors, correlation, health, clock."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from pension_shared.web import clock_router, install_correlation, install_limits, install_problem_handlers

    app = FastAPI(title=title, version="1.0.0", docs_url="/docs", openapi_url="/openapi.json")
    install_problem_handlers(app)
    install_correlation(app)
    install_observability(app, contexts)
    broker = BrokerProbe(contexts[0].transport)
    first = contexts[0]
    install_limits(app, first.settings)
    app.include_router(clock_router(first.edge, first.clock, settable=not first.settings.production))
    for ctx in contexts:
        for router in ctx.definition.routers(ctx):
            app.include_router(router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        return {"status": "up"}

    # response_model=None: FastAPI would otherwise look the return annotation up among this
    # module's names, and JSONResponse is imported above, by the API only.
    @app.get("/ready", tags=["operations"], response_model=None)
    def ready() -> JSONResponse:
        states = {ctx.definition.name: ctx.ready() for ctx in contexts}
        states["broker"] = broker.reachable()
        status = 200 if all(states.values()) else 503
        return JSONResponse({"ready": all(states.values()), "services": states}, status_code=status)

    return app


def run_service_cli(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    """``python -m pension_<service> api|relay|consumer|migrate`` for the production shape."""
    parser = argparse.ArgumentParser(prog=f"pension-{definition.name}")
    sub = parser.add_subparsers(dest="role", required=True)
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    sub.add_parser("relay", help="publish the outbox to the service's topic")
    sub.add_parser("consumer", help="consume other services' events into this service")
    sub.add_parser("migrate", help="apply the database migrations")
    sub.add_parser("jobs", help="run the service's jobs on the business clock (due payouts, year closing)")
    args = parser.parse_args(argv)
    configure_logging(structured=True)
    ctx = build_context(definition, ServiceSettings())  # type: ignore[call-arg]
    if args.role == "migrate":
        ctx.migrate()
        ctx.transport.prepare(all_topics_with_dlq(ctx.settings.topic_prefix))
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.role == "relay":
        relay = ctx.relay()
        freeze_what_startup_built()
        relay.run(stop, lease=Lease(ctx.engine, f"outbox-relay:{definition.name}"))
    elif args.role == "jobs":
        threads = [threading.Thread(target=run_job, args=(job, stop), name=job.name) for job in definition.jobs(ctx)]
        freeze_what_startup_built()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elif args.role == "consumer":
        consumer = ctx.consumer()
        freeze_what_startup_built()
        try:
            consumer.run(stop)
        finally:
            consumer.close()
    else:
        import uvicorn

        # uvicorn's own logs go through the JSON lines configured above (log_config=None), and it
        # writes no access line per request: the gateway logs every request
        # (deploy/gateway/nginx.conf), /metrics counts them by route and status, and uvicorn's
        # plain-text line cost the API 2 % of its CPU under load.
        app = build_app([ctx], title=f"Personal pension: {definition.name}")
        freeze_what_startup_built()
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
