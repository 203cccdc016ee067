"""Where the machine's CPU goes while a phase runs: each process's CPU time, read from /proc before
and after, summed by part (the load generator, the APIs, the relays, the consumers, PostgreSQL,
Kafka...) and divided by the commands the phase got accepted.

On a machine where every process shares the same few cores, this is what bounds a closed loop's
throughput: a command costs the machine the sum of every part's share, whichever process spends
it. It also tells apart what the APIs cost from what the rest of the pipeline costs for the same
command, which a throughput figure alone cannot. PostgreSQL's time is split further by the
database each connection is to: which service's statements the server spends it on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


def descendants(pid: int, children: Mapping[int, Sequence[int]]) -> list[int]:
    """Every process below this one, running now."""
    found, pending = [], list(children.get(pid, ()))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, ()))
    return found


def tree_cpu_s(
    pid: int, children: Mapping[int, Sequence[int]], *, each: dict[int, float] | None = None,
) -> float | None:
    """The CPU time of a process and of all its descendants, those that ended included (a
    PostgreSQL backend's time goes to the postmaster's children's time when it exits). With
    ``each``, every running descendant's own time, as counted in the total, is put there by pid."""
    own = cpu_s(pid, reaped=True)
    if own is None:
        return None
    total = own
    for child in descendants(pid, children):
        spent = cpu_s(child)
        if spent is not None:
            total += spent
            if each is not None:
                each[child] = spent
    return total


def command_line(pid: int) -> str:
    """The process's command line as ``ps`` shows it (a PostgreSQL process's title); "" once gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_database(pid: int) -> str | None:
    """The database the PostgreSQL connection served by this process is to; None for the
    server's own processes."""
    return database_in_title(command_line(pid))


def database_in_title(title: str) -> str | None:
    """The database in a PostgreSQL connection's process title (``postgres: <user> <database>
    <host>(<port>) <activity>``, ``[local]`` for a Unix socket's, the server's ``cluster_name:``
    after ``postgres:`` when it has one); None in any other title (the checkpointer's, the WAL
    writer's, an autovacuum worker's...)."""
    words = title.split()
    if len(words) >= 2 and words[0] == "postgres:" and words[1].endswith(":"):
        del words[1]
    if len(words) >= 4 and words[0] == "postgres:" and (words[3] == "[local]" or words[3].endswith(")")):
        return words[2]
    return None


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
    share_of: Callable[[int], str | None] | None = None
    """With ``tree``: the share of the part a descendant's CPU time is shown in (a PostgreSQL
    connection's database), None for none. Shares are shown beneath their part, not added to
    any sum; what they leave of the part (the server's own processes, connections that ended)
    is shown as ``Split.UNSHARED``."""


@dataclass(frozen=True)
class Reading:
    """Every part's CPU time at one moment, and the machine's under ``CpuMeter.MACHINE``."""

    parts: dict[str, float | None]
    """By part; None when a part could not be read."""
    shares: dict[tuple[str, str, int], float] = field(default_factory=dict)
    """(part, share, pid) -> the CPU time of that descendant of the part so far."""


class CpuMeter:
    """Reads every part's CPU time, and the machine's, at once."""

    MACHINE = "the machine"

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = list(parts)

    def read(self) -> Reading:
        children = children_of() if any(part.tree for part in self.parts) else {}
        parts: dict[str, float | None] = {}
        shares: dict[tuple[str, str, int], float] = {}
        for part in self.parts:
            pids = list(part.pids())
            used: float | None = 0.0 if pids else None  # none found: not known, rather than nothing
            for pid in pids:
                below: dict[int, float] = {}
                spent = tree_cpu_s(pid, children, each=below) if part.tree else cpu_s(pid)
                if spent is None:  # gone (or never seen): the part's figure would be wrong
                    used = None
                    break
                used += spent
                if part.share_of is not None:
                    for child, child_s in below.items():
                        if (share := part.share_of(child)) is not None:
                            shares[(part.name, share, child)] = child_s
            parts[part.name] = used
        parts[self.MACHINE] = machine_busy_s()
        return Reading(parts, shares)


@dataclass(frozen=True)
class Split:
    """What each part spent between two readings, per accepted command."""

    commands: int
    wall_s: float
    ms_per_command: dict[str, float | None]
    """By part; None when a part could not be read. The machine's total is under ``MACHINE``,
    and what no part accounts for (other processes, the kernel) under ``REST``."""
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    """Part -> share -> ms per command, for the parts read with ``Part.share_of``; what the shares
    leave of the part under ``UNSHARED``."""

    REST = "the rest of the machine"
    UNSHARED = "the rest"

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
    for name in spans[0][0].parts:
        spent: float | None = 0.0
        for before, after in spans:
            start, end = before.parts.get(name), after.parts.get(name)
            if start is None or end is None or spent is None:
                spent = None
            else:
                spent += end - start
        per[name] = None if spent is None else spent * 1000 / max(commands, 1)
    accounted = sum(value or 0.0 for name, value in per.items() if name != CpuMeter.MACHINE)
    per[Split.REST] = max((per[CpuMeter.MACHINE] or 0.0) - accounted, 0.0)
    return Split(commands, wall_s, per, _split_shares(spans, per, commands))


def _split_shares(spans: Sequence[tuple[Reading, Reading]], per: Mapping[str, float | None],
                  commands: int) -> dict[str, dict[str, float]]:
    """Each share's CPU between the readings: a process there at both, what it spent in between;
    one that started in between, all it spent; one that ended in between is not seen (its time
    went to its parent's reaped time), and stays in ``UNSHARED`` with the part's own."""
    spent: dict[str, dict[str, float]] = {}
    for before, after in spans:
        for (part, share, pid), end in after.shares.items():
            used = max(end - before.shares.get((part, share, pid), 0.0), 0.0)
            shares = spent.setdefault(part, {})
            shares[share] = shares.get(share, 0.0) + used
    result: dict[str, dict[str, float]] = {}
    for part, shares in spent.items():
        whole = per.get(part)
        if whole is None:
            continue
        result[part] = {share: s * 1000 / max(commands, 1) for share, s in shares.items()}
        result[part][Split.UNSHARED] = max(whole - sum(result[part].values()), 0.0)
    return result


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
        Part("PostgreSQL", server(sa.engine.make_url(server_url).port), tree=True, share_of=postgres_database),
        Part("Kafka", server(int(kafka.rsplit(":", 1)[1])), tree=True),
    ]
