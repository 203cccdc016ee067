"""The system under test in its production shape: every role of every service as its own OS
process (api, relay, consumer, jobs) on one PostgreSQL (a database per service) and one Kafka,
plus the minimal reference served the same way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from pension_shared.clock import SHANGHAI, SettableClock

MODULES = {
    "account": "pension_account",
    "fund-account": "pension_fund_account",
    "tax": "pension_tax",
    "payout": "pension_payout",
}
ROLES = ("api", "relay", "consumer", "jobs")
JOBS = ("tax", "payout")
"""The services with work on the business clock; the others have no jobs process."""
BUSINESS_TIME = datetime(2025, 10, 1, 9, 0, tzinfo=SHANGHAI)


@dataclass
class Proc:
    name: str
    service: str
    role: str
    popen: subprocess.Popen
    log: Path
    args: tuple[str, ...] = ()
    module: str | None = None

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident set (VmHWM), read from /proc while it runs."""
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (FileNotFoundError, ProcessLookupError):
            return None
        return None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Cluster:
    workdir: Path
    server_url: str
    kafka: str
    prefix: str
    database_urls: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    api: dict[str, str] = field(default_factory=dict)
    reference: str = ""
    database_prefix: str = "bench_"
    kafka_for: dict[str, str] = field(default_factory=dict)
    """A service whose processes reach the broker elsewhere than ``kafka`` (through a proxy)."""
    api_replicas: dict[str, int] = field(default_factory=dict)
    """API processes of a service beyond the first (default: one each)."""
    apis: dict[str, list[str]] = field(default_factory=dict)
    """Every API process's base URL per service (``api`` holds the first)."""
    with_reference: bool = True

    # -- set-up ------------------------------------------------------------------------------

    def create_databases(self) -> None:
        admin = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for service in MODULES:
                name = self.database_prefix + service.replace("-", "_")
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                self.database_urls[service] = (
                    sa.engine.make_url(self.server_url).set(database=name).render_as_string(hide_password=False)
                )
        admin.dispose()

    def env(self, service: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PENSION_ENV": "test",
            "PENSION_TRANSPORT": "kafka",
            "PENSION_KAFKA_BOOTSTRAP": self.kafka_for.get(service, self.kafka),
            "PENSION_TOPIC_PREFIX": self.prefix,
            "PENSION_CONSUMER_GROUP_PREFIX": self.prefix.rstrip("."),
            "PENSION_TOPIC_PARTITIONS": "12",
            "PENSION_CLOCK_FILE": str(self.workdir / "clock.json"),
            "PENSION_DATABASE_URL": self.database_urls[service],
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PENSION_TOKENS_FILE", None)
        return env

    def spawn(self, service: str, role: str, *args: str, module: str | None = None, name: str | None = None) -> Proc:
        name = name or f"{service}-{role}"
        log = self.workdir / f"{name}.log"
        proc = Proc(name, service, role, self._popen(service, role, args, module, log, "wb"), log, tuple(args), module)
        self.procs.append(proc)
        return proc

    def _popen(self, service: str, role: str, args, module: str | None, log: Path, mode: str) -> subprocess.Popen:  # noqa: ANN001
        with open(log, mode) as out:
            return subprocess.Popen(
                [sys.executable, "-m", module or MODULES[service], role, *args], env=self.env(service),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def restart(self, proc: Proc) -> None:
        """Start a process that has exited again, the same way (its log continues)."""
        if proc.popen.poll() is None:
            raise RuntimeError(f"{proc.name} is still running")
        proc.popen = self._popen(proc.service, proc.role, proc.args, proc.module, proc.log, "ab")

    def start(self) -> None:
        SettableClock(self.workdir / "clock.json").set(BUSINESS_TIME)
        migrations = [self.spawn(service, "migrate") for service in MODULES]
        for proc in migrations:
            if proc.popen.wait(timeout=180) != 0:
                raise RuntimeError(f"{proc.name} failed:\n{proc.tail()}")
        self.procs = []
        ports = free_ports(len(MODULES) + 1 + sum(self.api_replicas.values()))
        for service in MODULES:
            for replica in range(1 + self.api_replicas.get(service, 0)):
                port = ports.pop(0)
                self.spawn(service, "api", "--port", str(port), name=f"{service}-api" + (f"-{replica + 1}" if replica else ""))
                self.apis.setdefault(service, []).append(f"http://127.0.0.1:{port}")
            self.api[service] = self.apis[service][0]
            for role in ROLES[1:]:
                if role != "jobs" or service in JOBS:
                    self.spawn(service, role)
        if self.with_reference:
            self.spawn("fund-account", "reference", "--port", str(ports[-1]), module="bench.reference")
            self.reference = f"http://127.0.0.1:{ports[-1]}"
        self.wait_ready([*(base for bases in self.apis.values() for base in bases), *([self.reference] if self.reference else [])])

    def wait_ready(self, bases: list[str], timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(bases)
        while pending and time.monotonic() < deadline:
            for base in sorted(pending):
                try:
                    if _ready(httpx.get(base + "/ready", timeout=10)):
                        pending.discard(base)
                except httpx.TransportError:
                    pass
            dead = [p for p in self.procs if p.popen.poll() is not None]
            if dead:
                raise RuntimeError("processes died at start:\n" + "\n".join(f"--- {p.name}\n{p.tail()}" for p in dead))
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready within {timeout_s} s: {sorted(pending)}")

    # -- while it runs -----------------------------------------------------------------------

    def peak_rss(self) -> dict[str, float | None]:
        return {p.name: p.peak_rss_mb() for p in self.procs}

    def dead(self) -> list[Proc]:
        return [p for p in self.procs if p.popen.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)


def _ready(response: httpx.Response) -> bool:
    """Ready, or ready but for the broker probe: on a loaded machine its 2 s budget can run out
    while the broker is fine (the migrations just created the topics on it)."""
    if response.status_code == 200:
        return True
    states = response.json().get("services", {}) if response.status_code == 503 else {}
    return bool(states) and all(up for name, up in states.items() if name != "broker")


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports
