"""Where the machine's CPU goes while a phase runs: each process's CPU time, read from /proc before
and after, summed by part (the load generator, the APIs, the relays, the consumers, PostgreSQL,
Kafka...) and divided by the commands the phase got accepted.

On a machine where every process shares the same few cores, this is what bounds a closed loop's
throughput: a command costs the machine the sum of every part's share, whichever process spends
it. It also tells apart what the APIs cost from what the rest of the pipeline costs for the same
command, which a throughput figure alone cannot."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa

if TYPE_CHECKING:
    from bench.cluster import Cluster

TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"
"""The state of a listening socket in /proc/net/tcp."""


def cpu_s(pid: int, *, reaped: bool = False) -> float | None:
    """The process's CPU time so far (user and system, every thread), with ``reaped`` that of its
    children it has waited for too (a server's finished connections); None once it is gone."""
    try:
        # The command name (field 2) may hold spaces and parentheses: the fields after its last ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / TICKS


def children_of() -> dict[int, list[int]]:
    """Every running process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    return children


def tree_cpu_s(pid: int, children: Mapping[int, Sequence[int]]) -> float | None:
    """The CPU time of a process and of all its descendants, those that ended included (a
    PostgreSQL backend's time goes to the postmaster's children's time when it exits)."""
    own = cpu_s(pid, reaped=True)
    if own is None:
        return None
    pending, total = list(children.get(pid, ())), own
    while pending:
        child = pending.pop()
        total += cpu_s(child) or 0.0
        pending.extend(children.get(child, ()))
    return total


def listening_pid(port: int) -> int | None:
    """The process listening on this TCP port of this machine (PostgreSQL's postmaster, Kafka's
    JVM), found through the socket's inode; None when it cannot be seen (another user's process
    without the right to read its descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return int(entry.name)
            except OSError:
                continue
    return None


def machine_busy_s() -> float:
    """CPU time the whole machine spent busy so far (every core: user, nice, system, interrupts;
    not idle, I/O wait or time stolen by the hypervisor)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / TICKS


@dataclass(frozen=True)
class Part:
    name: str
    pids: Callable[[], Iterable[int]]
    """The processes of the part now (a restarted one has a new pid)."""
    tree: bool = False
    """Count their descendants too, and the children they reaped (a server's connections)."""


Reading = dict[str, float | None]


class CpuMeter:
    """Reads every part's CPU time, and the machine's, at once."""

    MACHINE = "the machine"

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = list(parts)

    def read(self) -> Reading:
        children = children_of() if any(part.tree for part in self.parts) else {}
        reading: Reading = {}
        for part in self.parts:
            pids = list(part.pids())
            used: float | None = 0.0 if pids else None  # none found: not known, rather than nothing
            for pid in pids:
                spent = tree_cpu_s(pid, children) if part.tree else cpu_s(pid)
                if spent is None:  # gone (or never seen): the part's figure would be wrong
                    used = None
                    break
                used += spent
            reading[part.name] = used
        reading[self.MACHINE] = machine_busy_s()
        return reading


@dataclass(frozen=True)
class Split:
    """What each part spent between two readings, per accepted command."""

    commands: int
    wall_s: float
    ms_per_command: dict[str, float | None]
    """By part; None when a part could not be read. The machine's total is under ``MACHINE``,
    and what no part accounts for (other processes, the kernel) under ``REST``."""

    REST = "the rest of the machine"

    @property
    def total_ms(self) -> float:
        return self.ms_per_command[CpuMeter.MACHINE] or 0.0

    @property
    def cores_busy(self) -> float:
        return self.total_ms * self.commands / 1000 / self.wall_s if self.wall_s else 0.0

    def of(self, *names: str) -> float:
        """The parts' sum (the unreadable counted as nothing)."""
        return sum(self.ms_per_command.get(name) or 0.0 for name in names)


def split(spans: Sequence[tuple[Reading, Reading]], *, commands: int, wall_s: float) -> Split:
    """The CPU spent between each pair of readings (a phase run in parts), per command."""
    per: dict[str, float | None] = {}
    for name in spans[0][0]:
        spent: float | None = 0.0
        for before, after in spans:
            start, end = before.get(name), after.get(name)
            if start is None or end is None or spent is None:
                spent = None
            else:
                spent += end - start
        per[name] = None if spent is None else spent * 1000 / max(commands, 1)
    accounted = sum(value or 0.0 for name, value in per.items() if name != CpuMeter.MACHINE)
    per[Split.REST] = max((per[CpuMeter.MACHINE] or 0.0) - accounted, 0.0)
    return Split(commands, wall_s, per)


def parts_of(cluster: Cluster, *, server_url: str, kafka: str) -> list[Part]:
    """The benchmark's parts: this process (the load generator), each role of the services, the
    reference, and the PostgreSQL and Kafka servers they use (found by their listening ports)."""

    def role(name: str) -> Callable[[], list[int]]:
        return lambda: [p.popen.pid for p in cluster.procs if p.role == name]

    def server(port: int | None) -> Callable[[], list[int]]:
        pid = listening_pid(port) if port else None
        return lambda: [pid] if pid is not None else []

    return [
        Part("load generator", lambda: [os.getpid()]),
        Part("APIs", role("api")),
        Part("the reference", role("reference")),
        Part("relays", role("relay")),
        Part("consumers", role("consumer")),
        Part("jobs", role("jobs")),
        Part("PostgreSQL", server(sa.engine.make_url(server_url).port), tree=True),
        Part("Kafka", server(int(kafka.rsplit(":", 1)[1])), tree=True),
    ]
