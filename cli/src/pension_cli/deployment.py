"""What an operator command works against: the four services' databases and their event log,
either the embedded default (``--var DIR``: a SQLite file per service and the embedded log) or a
production deployment (PostgreSQL per service from ``PENSION_<SERVICE>_DATABASE_URL`` and Kafka
from ``PENSION_KAFKA_BOOTSTRAP``)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy.engine import Engine

from pension_cli.log_access import EmbeddedLogAccess, KafkaLogAccess, LogAccess
from pension_shared.db import create_engine
from pension_shared.ledger import EventStore
from pension_shared.messaging import dlq_topic
from pension_shared.runtime import ALL_TOPICS, ServiceDefinition

SERVICE_NAMES = ("account", "fund-account", "tax", "payout")


class DeploymentError(RuntimeError):
    """The deployment is not configured well enough for the command (said to the operator)."""


def definitions() -> dict[str, ServiceDefinition]:
    # Imported late: the service packages are only needed once a command runs.
    from pension_cli.platform import SERVICES

    return {d.name: d for d in SERVICES}


@dataclass
class ServiceLedger:
    """One service's store as an operator reads it: its database and its event store."""

    definition: ServiceDefinition
    engine: Engine

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def store(self) -> EventStore:
        return EventStore(
            service=self.definition.name, topic=self.definition.topic,
            projections=self.definition.projections(), upcasters=self.definition.upcasters(),
        )


@dataclass
class Deployment:
    target: str
    database_urls: dict[str, str]
    log_location: str
    group_prefix: str
    partitions: int
    topic_prefix: str = ""
    """Prepended to every topic name (PENSION_TOPIC_PREFIX), for deployments sharing a cluster."""
    embedded_log: Any = field(default=None, repr=False)
    """The EmbeddedLog of a platform running in this process (``pension run``), to share."""
    _engines: dict[str, Engine] = field(default_factory=dict, repr=False)
    """One engine per service, made on first use: a long-lived reader (the console) asks again
    and again. Disposing one only closes its idle connections; it stays usable."""

    def ledger(self, service: str) -> ServiceLedger:
        if service not in self.database_urls:
            raise DeploymentError(f"no database configured for the {service} service")
        if service not in self._engines:
            self._engines[service] = create_engine(self.database_urls[service])
        return ServiceLedger(definitions()[service], self._engines[service])

    def ledgers(self, services: Sequence[str] | None = None) -> list[ServiceLedger]:
        return [self.ledger(name) for name in (services or SERVICE_NAMES)]

    def log(self) -> LogAccess:
        if self.target == "embedded":
            return EmbeddedLogAccess(Path(self.log_location), partitions=self.partitions, shared=self.embedded_log)
        if not self.log_location:
            raise DeploymentError("production target: PENSION_KAFKA_BOOTSTRAP is not set")
        return KafkaLogAccess(self.log_location)

    def topics(self) -> list[str]:
        return [self.topic_prefix + topic for topic in ALL_TOPICS]

    def dlq_topics(self) -> list[str]:
        return [dlq_topic(topic) for topic in self.topics()]

    def consumer_groups(self) -> dict[str, tuple[str, ...]]:
        """Each service's consumer group and the topics it reads."""
        return {
            f"{self.group_prefix}.{d.name}": tuple(self.topic_prefix + t for t in d.subscribes_to)
            for d in definitions().values() if d.subscribes_to
        }


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment")
    group.add_argument(
        "--target", choices=("embedded", "production"), default=None,
        help="embedded: the SQLite databases and the embedded log under --var; production: PostgreSQL "
        "from PENSION_<SERVICE>_DATABASE_URL and Kafka from PENSION_KAFKA_BOOTSTRAP "
        "(default: $PENSION_TARGET, else production when PENSION_ENV=production, else embedded)",
    )
    group.add_argument("--var", type=Path, default=None,
                       help="the embedded default's data directory (default: $PENSION_VAR or ./var)")
    group.add_argument("--group-prefix", default=None,
                       help="consumer group prefix (default: $PENSION_CONSUMER_GROUP_PREFIX or 'pension')")
    group.add_argument("--topic-prefix", default=None,
                       help="prefix of every topic name (default: $PENSION_TOPIC_PREFIX or none)")


def deployment_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Deployment:
    env = dict(os.environ if environ is None else environ)
    target = args.target or env.get("PENSION_TARGET") or ("production" if env.get("PENSION_ENV") == "production" else "embedded")
    prefix = args.group_prefix or env.get("PENSION_CONSUMER_GROUP_PREFIX") or "pension"
    topic_prefix = args.topic_prefix if args.topic_prefix is not None else env.get("PENSION_TOPIC_PREFIX", "")
    if target == "embedded":
        var = Path(args.var or env.get("PENSION_VAR") or "var")
        if not (var / "eventlog.db").exists():
            raise DeploymentError(f"{var.resolve()} holds no embedded platform (no eventlog.db); run `pension run` first or pass --var")
        urls = {name: f"sqlite:///{var / (name.replace('-', '_') + '.db')}" for name in SERVICE_NAMES}
        return Deployment("embedded", urls, str(var / "eventlog.db"), prefix, partitions=3, topic_prefix=topic_prefix)
    urls = {
        name: env[key] for name in SERVICE_NAMES
        if (key := f"PENSION_{name.upper().replace('-', '_')}_DATABASE_URL") in env
    }
    bootstrap = env.get("PENSION_KAFKA_BOOTSTRAP", "")
    if not urls and not bootstrap:
        raise DeploymentError(
            "production target: set PENSION_<SERVICE>_DATABASE_URL (e.g. PENSION_FUND_ACCOUNT_DATABASE_URL) "
            "and PENSION_KAFKA_BOOTSTRAP"
        )
    partitions = int(env.get("PENSION_TOPIC_PARTITIONS", "12"))
    return Deployment("production", urls, bootstrap, prefix, partitions=partitions, topic_prefix=topic_prefix)
