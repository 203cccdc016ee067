"""The whole platform in one process: the four services, each with its own database, their
relays and consumers as threads, and one HTTP app with every service's router mounted under
its prefix. The same code runs the production shape; only the adapters differ."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from fastapi import FastAPI

from pension_account.bootstrap import DEFINITION as ACCOUNT
from pension_fund_account.application.seeding import seed_default_products
from pension_fund_account.bootstrap import DEFINITION as FUND_ACCOUNT
from pension_payout.bootstrap import DEFINITION as PAYOUT
from pension_shared.auth import TokenRegistry
from pension_shared.clock import BusinessClock, SettableClock
from pension_shared.runtime import (
    EmbeddedTransport, KafkaTransport, ServiceContext, run_job, ServiceDefinition, Transport, all_topics_with_dlq, build_app, build_context,
)
from pension_shared.settings import ServiceSettings
from pension_tax.bootstrap import DEFINITION as TAX

if TYPE_CHECKING:
    from pension_cli.console import Console
    from pension_cli.deployment import Deployment

log = logging.getLogger(__name__)

SERVICES: tuple[ServiceDefinition, ...] = (ACCOUNT, FUND_ACCOUNT, TAX, PAYOUT)


@dataclass
class Platform:
    contexts: list[ServiceContext]
    transport: Transport
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _consoles: list["Console"] = field(default_factory=list)

    def context(self, name: str) -> ServiceContext:
        return next(ctx for ctx in self.contexts if ctx.definition.name == name)

    def migrate(self) -> None:
        self.transport.prepare(all_topics_with_dlq(self.contexts[0].settings.topic_prefix))
        for ctx in self.contexts:
            ctx.migrate()

    def seed(self) -> None:
        """The embedded default starts with a few eligible products of each type."""
        seed_default_products(self.context("fund-account"))

    def app(self) -> FastAPI:
        """Every service's API, and the operators' console beside them (``/console``)."""
        from pension_cli.console import Console, install_console

        app = build_app(self.contexts, title="Personal pension platform")
        first = self.contexts[0]
        console = Console(self.deployment(), first.edge.tokens, first.clock)
        install_console(app, console)
        app.state.console = console
        self._consoles.append(console)
        return app

    def deployment(self) -> "Deployment":
        """The platform as the operator commands see it: each service's database and the log."""
        from pension_cli.deployment import Deployment

        settings = self.contexts[0].settings
        urls = {ctx.definition.name: ctx.engine.url.render_as_string(hide_password=False) for ctx in self.contexts}
        if isinstance(self.transport, EmbeddedTransport):
            return Deployment("embedded", urls, str(settings.embedded_log_path), settings.consumer_group_prefix,
                              partitions=self.transport.log.partitions, topic_prefix=settings.topic_prefix,
                              embedded_log=self.transport.log)
        return Deployment("production", urls, settings.kafka_bootstrap or "", settings.consumer_group_prefix,
                          partitions=settings.topic_partitions, topic_prefix=settings.topic_prefix)

    def start_workers(self) -> None:
        """A relay and a consumer per service, as daemon threads."""
        for ctx in self.contexts:
            relay = ctx.relay()
            self._spawn(f"{ctx.definition.name}-relay", lambda r=relay: r.run(self._stop))
            if ctx.definition.subscribes_to:
                consumer = ctx.consumer()
                self._spawn(f"{ctx.definition.name}-consumer", lambda c=consumer: c.run(self._stop))
            for job in ctx.definition.jobs(ctx):
                self._spawn(f"{ctx.definition.name}-{job.name}", lambda j=job: run_job(j, self._stop))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop_workers(self) -> None:
        """Stop relays, consumers and jobs; the APIs and databases stay usable."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def end_streams(self) -> None:
        """The consoles' live streams end (the HTTP server is stopping)."""
        for console in self._consoles:
            console.live.end_streams()

    def stop(self) -> None:
        self.stop_workers()
        for console in self._consoles:
            console.close()
        for ctx in self.contexts:
            ctx.engine.dispose()


def embedded_platform(var_dir: Path, *, partitions: int = 3, database_urls: dict[str, str] | None = None) -> Platform:
    """The embedded default; ``database_urls`` puts services' databases elsewhere (tests on PostgreSQL)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    log_path = var_dir / "eventlog.db"
    clock = SettableClock(var_dir / "clock.json")
    transport = EmbeddedTransport(log_path, partitions=partitions)
    tokens = TokenRegistry.from_file(None, development=True)
    contexts = [
        build_context(
            definition,
            ServiceSettings(
                env="development",
                database_url=(database_urls or {}).get(definition.name)
                or f"sqlite:///{var_dir / (definition.name.replace('-', '_') + '.db')}",
                transport="embedded",
                embedded_log_path=log_path,
                clock_file=var_dir / "clock.json",
            ),
            clock=clock, transport=transport, tokens=tokens,
        )
        for definition in SERVICES
    ]
    return Platform(contexts, transport)


def kafka_platform(
    database_urls: dict[str, str], bootstrap: str, *, clock: BusinessClock, group_prefix: str = "pension",
    partitions: int = 3, topic_prefix: str = "",
) -> Platform:
    """The four services on PostgreSQL databases and a Kafka broker, in one process: the
    production adapters with the embedded composition (used by the integration tests)."""
    transport = KafkaTransport(bootstrap, partitions=partitions)
    tokens = TokenRegistry.from_file(None, development=True)
    contexts = [
        build_context(
            definition,
            ServiceSettings(
                env="test", database_url=database_urls[definition.name], transport="kafka",
                kafka_bootstrap=bootstrap, consumer_group_prefix=group_prefix, topic_partitions=partitions,
                topic_prefix=topic_prefix,
            ),
            clock=clock, transport=transport, tokens=tokens,
        )
        for definition in SERVICES
    ]
    return Platform(contexts, transport)


def services() -> Sequence[ServiceDefinition]:
    return SERVICES
