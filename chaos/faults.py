"""The faults, and the supervisor that brings killed processes back.

Each kind of fault has a thread of its own that injects it at evenly spread moments (with some
jitter) over the run, so faults of different kinds overlap:

- ``kill -9 api|relay|consumer``: SIGKILL to one process of that role, the services in turn; the
  supervisor starts it again after a short pause, as an orchestrator would.
- ``kafka restart``: the broker stopped and started again on its data (deploy/local/kafka.sh restart).
- ``postgres restart``: the server stopped, alternately ``-m fast`` and ``-m immediate`` (a crash
  and recovery), and started again on its data (deploy/local/postgres.sh restart).
- ``broker cut``: one service's processes cut off from the broker by their proxy for a few seconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.cluster import Cluster, Proc
from chaos.proxy import Proxy

KILL_KINDS = ("kill -9 api", "kill -9 relay", "kill -9 consumer")
KINDS = (*KILL_KINDS, "kafka restart", "postgres restart", "broker cut")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Exit:
    """A process that exited without being killed by the harness."""

    name: str
    code: int | None
    at_s: float
    tail: str


@dataclass
class Supervisor:
    """Starts again every process of the cluster that is not running: after ``pause_s`` when the
    harness killed it, after a second when it exited on its own (recorded as an ``Exit``)."""

    cluster: Cluster
    pause_s: float = 1.0
    killed: dict[str, float] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    restarts: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-supervisor", daemon=True)
        self._t0 = time.monotonic()
        self._down_since: dict[str, float] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def kill(self, proc: Proc) -> bool:
        with self._lock:
            if proc.popen.poll() is not None or proc.name in self.killed:
                return False
            self.killed[proc.name] = time.monotonic()
            os.kill(proc.popen.pid, signal.SIGKILL)
            return True

    def all_running(self) -> bool:
        return all(p.popen.poll() is None for p in self.cluster.procs)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                for proc in self.cluster.procs:
                    if proc.popen.poll() is None:
                        continue
                    if proc.name in self.killed:
                        if now - self.killed[proc.name] < self.pause_s:
                            continue
                        del self.killed[proc.name]
                    else:
                        first = self._down_since.setdefault(proc.name, now)
                        if now - first < 1.0:
                            continue
                        del self._down_since[proc.name]
                        self.exits.append(Exit(proc.name, proc.popen.returncode, now - self._t0, proc.tail(8)))
                    self.cluster.restart(proc)
                    self.restarts += 1


@dataclass
class Injected:
    kind: str
    target: str
    at_s: float
    took_s: float
    ok: bool
    note: str = ""


class Injector:
    """Injects ``per_kind`` faults of every kind over ``duration_s``."""

    def __init__(self, cluster: Cluster, supervisor: Supervisor, proxies: dict[str, Proxy], *, duration_s: float,
                 per_kind: int, cut_s: tuple[float, float] = (3.0, 6.0), seed: int = 8,
                 log: Callable[[str], None] = print) -> None:
        self.cluster, self.supervisor, self.proxies = cluster, supervisor, proxies
        self.duration_s, self.per_kind, self.cut_s = duration_s, per_kind, cut_s
        self.random = random.Random(seed)
        self.log = log
        self.injected: list[Injected] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    def pending(self) -> bool:
        """Faults still to be injected (a kind whose faults took longer than planned runs late)."""
        return any(thread.is_alive() for thread in self._threads)

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for f in self.injected if f.kind == kind and f.ok) for kind in KINDS}

    def failed(self) -> list[Injected]:
        return [f for f in self.injected if not f.ok]

    def start(self) -> None:
        self._t0 = time.monotonic()
        for offset, kind in enumerate(KINDS):
            thread = threading.Thread(target=self._schedule, args=(kind, offset), name=f"chaos-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Wait for the faults in progress to end (a cut healed, a restart done); inject no more."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        for proxy in self.proxies.values():
            if proxy.is_cut:
                proxy.heal()

    def _schedule(self, kind: str, offset: int) -> None:
        """The i-th fault of a kind is due at (i + phase) * interval, the kinds' phases staggered."""
        interval = self.duration_s / self.per_kind
        targets = self._targets(kind)
        for i in range(self.per_kind):
            due = self._t0 + (i + (offset + 0.5) / len(KINDS)) * interval + self.random.uniform(-0.15, 0.15) * interval
            if self._stop.wait(max(due - time.monotonic(), 0)):
                return
            target = targets[i % len(targets)]
            started = time.monotonic()
            try:
                ok, note = self._inject(kind, target)
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                ok, note = False, f"{type(exc).__name__}: {exc}"
            fault = Injected(kind, target, started - self._t0, time.monotonic() - started, ok, note)
            with self._lock:
                self.injected.append(fault)
            if not ok:
                self.log(f"  fault {kind} on {target} FAILED: {note}")

    def _targets(self, kind: str) -> list[str]:
        if kind in KILL_KINDS:
            role = kind.split()[-1]
            names = [p.name for p in self.cluster.procs if p.role == role]
        elif kind == "broker cut":
            names = list(self.proxies)
        else:
            names = [kind.split()[0]]
        self.random.shuffle(names)
        return names

    def _inject(self, kind: str, target: str) -> tuple[bool, str]:
        if kind in KILL_KINDS:
            proc = next(p for p in self.cluster.procs if p.name == target)
            deadline = time.monotonic() + 30  # it may still be down from an earlier fault
            while not self.supervisor.kill(proc):
                if self._stop.wait(0.5) or time.monotonic() > deadline:
                    return False, "the process was not running"
            return True, ""
        if kind == "kafka restart":
            return _bring_back(_script("kafka.sh", "restart"), lambda: _script("kafka.sh", "restart"))
        if kind == "postgres restart":
            mode = "immediate" if self.counts()["postgres restart"] % 2 else "fast"
            ok, note = _bring_back(_script("postgres.sh", "restart", mode), lambda: _script("postgres.sh", "restart", mode))
            return ok, note or mode
        proxy = self.proxies[target]
        proxy.cut()
        self._stop.wait(self.random.uniform(*self.cut_s))
        proxy.heal()
        return True, ""


def _bring_back(outcome: tuple[bool, str], again: Callable[[], tuple[bool, str]], attempts: int = 5) -> tuple[bool, str]:
    """A restart that failed is not a fault injected, and the server must not stay down: try again."""
    ok, note = outcome
    for _ in range(attempts):
        if ok:
            break
        time.sleep(2)
        ok, _ = again()
    return outcome[0], note


def _script(name: str, *args: str) -> tuple[bool, str]:
    done = subprocess.run([str(REPO / "deploy" / "local" / name), *args], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return False, (done.stderr or done.stdout).strip().splitlines()[-1:][0] if (done.stderr or done.stdout).strip() else f"exit {done.returncode}"
    return True, ""
