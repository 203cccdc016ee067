"""What the benchmark prints: the machine it ran on, each measurement, and the issue's targets."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.cpu import CpuMeter, Split
from bench.ledgers import Runs

TARGETS = {
    "throughput_ratio": 0.70,
    "p99_ms": 100.0,
    "visible_p99_s": 1.0,
    "rebuild_per_s": 200_000,
    "verify_per_s": 300_000,
    "rss_mb": 250.0,
}


def machine(server_url: str, infra: Path) -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    engine = sa.create_engine(server_url)
    with engine.connect() as conn:
        postgres = conn.exec_driver_sql("SHOW server_version").scalar_one()
    engine.dispose()
    jars = sorted((infra / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    kafka = jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"
    load = os.getloadavg()
    return {
        "cpu": cpu, "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB", "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0], "postgresql": postgres, "kafka": f"{kafka} (KRaft, one broker)",
        "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _ms(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q) * 1000:.0f}" for q in (0.50, 0.95, 0.99))


def _refusals(stats: Any) -> str:
    other = {s: n for op in stats.ops.values() for s, n in op.statuses.items() if not 200 <= s < 300}
    parts = [f"{n} x {s}" for s, n in sorted(other.items())] + [f"{n} x {e}" for e, n in stats.errors.items()]
    return ", ".join(parts) or "none"


def render(plan: Any, machine: dict[str, str], r: dict[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    add("")
    add(f"Personal pension platform benchmark (issue 7), {plan.name} run")
    add("=" * 78)
    add(f"CPU         {machine['cpu']}, {machine['cores']}")
    add(f"RAM         {machine['ram']}        OS {machine['os']}")
    add(f"Python      {machine['python']}    PostgreSQL {machine['postgresql']}    Kafka {machine['kafka']}")
    add(f"load avg    {machine['load']} at start (the machine may be shared: compare with the reference, run alongside)")
    add(f"set-up      {plan.participants} participants with fund accounts at 10 banks in 5 regions, "
        f"{plan.withdrawers} approved for withdrawal ({r['setup_s']:.0f} s)")
    add("")

    system, reference = r["system"], r["reference"]
    contributions = system.op("contribution")
    ref_contributions = reference.op("contribution")
    c_rate = contributions.accepted / system.duration_s
    ref_rate = ref_contributions.accepted / reference.duration_s
    req_rate, ref_req_rate = system.accepted / system.duration_s, reference.accepted / reference.duration_s
    p99 = percentile(contributions.latencies, 0.99) * 1000
    add(f"1. Commands at the HTTP API: {plan.clients} concurrent clients (closed loop), mix "
        f"90 % contributions, 5 % purchases, 3 % registrations, 2 % withdrawals")
    add(f"   system {system.duration_s:.0f} s; the reference (one event row + one outbox row per request, same")
    add(f"   PostgreSQL, same server) {reference.duration_s:.0f} s, half before and half after the system")
    add(f"   {'':30}{'system':>20}{'reference':>20}{'ratio':>8}")
    add(f"   {'contributions accepted/s':30}{c_rate:>20.0f}{ref_rate:>20.0f}{c_rate / ref_rate:>8.2f}")
    add(f"   {'all commands accepted/s':30}{req_rate:>20.0f}{ref_req_rate:>20.0f}{req_rate / ref_req_rate:>8.2f}")
    add(f"   {'contribution p50/p95/p99 ms':30}{_ms(contributions.latencies):>20}{_ms(ref_contributions.latencies):>20}"
        f"{p99 / (percentile(ref_contributions.latencies, 0.99) * 1000):>8.2f}  (p99 ratio)")
    for name in ("purchase", "registration", "withdrawal"):
        op = system.op(name)
        if op.sent:
            add(f"   {name + ' p50/p95/p99 ms':30}{_ms(op.latencies):>20}   ({op.accepted} accepted of {op.sent})")
    add(f"   refused or failed: system {_refusals(system)}; reference {_refusals(reference)}")
    ok, why = r["keeps_up"]
    add(f"   the rest keeps up: {'yes' if ok else 'NO'} ({why}); drained "
        f"{_seconds(r['drain_s'])} after the load stopped")
    add(f"   sampled every {r['sampled_every_s']:.2g} s, outbox rows waiting (relay backlog) | records behind "
        "(consumer lag):")
    for sample in r["samples"][:: max(len(r["samples"]) // 8, 1)]:
        backlog = " ".join(f"{s}={n}" for s, n in sample.backlog.items())
        lag = " ".join(f"{s}={n}" for s, n in sample.lag.items())
        add(f"     t={sample.at_s:5.1f} s  backlog {backlog} | lag {lag}")
    add("")

    at_rate, ref_at_rate = r["at_rate"], r["ref_at_rate"]
    rate_p99 = percentile(at_rate.latencies, 0.99) * 1000
    sustained = at_rate.took_the_rate and r["rate_keeps_up"][0]
    add(f"1b. Latency at a throughput: contributions offered at a fixed {at_rate.offered_per_s:.0f}/s (open loop, "
        f"{TARGETS['throughput_ratio']:.0%} of the reference's")
    add("   closed-loop rate above); each latency counted from when the request was due, so a request the load")
    add("   generator could not send on time waits in the figure too (no coordinated omission)")
    add(f"   {'':30}{'system':>20}{'reference':>20}")
    add(f"   {'seconds':30}{at_rate.duration_s:>20.0f}{ref_at_rate.duration_s:>20.0f}")
    add(f"   {'accepted/s':30}{at_rate.accepted / at_rate.duration_s:>20.1f}"
        f"{ref_at_rate.accepted / ref_at_rate.duration_s:>20.1f}")
    add(f"   {'contribution p50/p95/p99 ms':30}{_ms(at_rate.latencies):>20}{_ms(ref_at_rate.latencies):>20}")
    add(f"   {'refused / unanswered / not sent':30}{f'{at_rate.refused} / {at_rate.errors} / {at_rate.not_sent}':>20}"
        f"{f'{ref_at_rate.refused} / {ref_at_rate.errors} / {ref_at_rate.not_sent}':>20}")
    rate_ok, rate_why = r["rate_keeps_up"]
    add(f"   the rest keeps up: {'yes' if rate_ok else 'NO'} ({rate_why}); drained {_seconds(r['rate_drain_s'])} after")
    add("")

    if r.get("cpu"):
        out.extend(_cpu_split(r["cpu"]["system"], r["cpu"]["reference"], ref_req_rate))
        add("")

    e2e = r["e2e"]
    add(f"2. End to end: contributions offered at {e2e.offered_per_s:.0f}/s (open loop) for {e2e.duration_s:.0f} s; "
        f"{e2e.accepted} accepted, {e2e.refused} refused, {e2e.errors} not answered within the run + 15 s,"
        f" {e2e.not_sent} not sent (256 already waiting)")
    add(f"   accepted contribution -> its voucher readable at the tax API (every {plan.e2e_track_every}th followed, "
        f"{len(e2e.visible_s)} of {e2e.tracked} seen, polled every {e2e.poll_s * 1000:.0f} ms: {e2e.polls} reads):")
    add(f"   p50 {percentile(e2e.visible_s, 0.5) * 1000:.0f} ms, p95 {percentile(e2e.visible_s, 0.95) * 1000:.0f} ms, "
        f"p99 {percentile(e2e.visible_s, 0.99) * 1000:.0f} ms, max {max(e2e.visible_s, default=float('nan')) * 1000:.0f} ms;"
        f" drained {_seconds(r['e2e_drain_s'])} after")
    add("")

    one, two = r["replicas"][1], r["replicas"][2]
    one_rate = one.op("contribution").accepted / one.duration_s
    two_rate = two.op("contribution").accepted / two.duration_s
    add(f"2b. Two API replicas of every service (round robin) against one, the same {plan.clients} clients, "
        f"{one.duration_s:.0f} s each:")
    add(f"   {'':30}{'one replica':>20}{'two replicas':>20}{'ratio':>8}")
    add(f"   {'contributions accepted/s':30}{one_rate:>20.0f}{two_rate:>20.0f}{two_rate / one_rate:>8.2f}")
    add(f"   {'contribution p50/p95/p99 ms':30}{_ms(one.op('contribution').latencies):>20}"
        f"{_ms(two.op('contribution').latencies):>20}")
    add(f"   (on {os.cpu_count()} cores shared by every process: a second replica adds a process, not a core)")
    add("")

    history = r["history"]
    window = min(50, len(history) // 4)
    first_p50, last_p50 = percentile(history[:window], 0.5) * 1000, percentile(history[-window:], 0.5) * 1000
    add(f"2c. A long-lived account: {len(history):,} contributions to one new account, one after another (one client;")
    add("   each adds an event to the account's stream and one to the participant's, as decades of monthly")
    add("   contributions would), nothing else offered meanwhile:")
    add(f"   contribution p50, first {window}: {first_p50:.1f} ms; last {window}: {last_p50:.1f} ms "
        f"(ratio {last_p50 / first_p50:.2f}: snapshots keep what a command reads bounded)")
    add("")

    ledgers = r.get("ledgers") or []
    if ledgers:
        add("3. Rebuilding projections from zero (EventStore.rebuild_projections, one transaction) and")
        add("4. verifying every hash chain (verify_ledger), per service ledger (grown two services at a time")
        add("   by cloning what the load recorded, then vacuumed as a ledger written over time would be;")
        add("   then each rebuilt and verified alone, each measure after a checkpoint, every table the load or a")
        add("   rebuild wrote vacuumed and analysed first, so that autovacuum does not take them up beside it;")
        repeats = len(ledgers[0].rebuild.seconds)
        add(f"   each operation run {repeats} times on each ledger: the median run's seconds and events/s, and the")
        add("   events/s of the slowest run and of the fastest):")
        add(f"   {'service':14}{'events':>11}{'generated':>11}{'rebuild s':>11}{'events/s':>10}{'slowest-fastest':>17}"
            f"{'verify s':>10}{'events/s':>10}{'slowest-fastest':>17}  intact")
        for ledger in ledgers:
            add(f"   {ledger.service:14}{ledger.events:>11,}{ledger.generate_s:>10.1f}s"
                f"{ledger.rebuild.median_s:>11.1f}{ledger.rebuild.per_s:>10,.0f}{_span(ledger.rebuild):>17}"
                f"{ledger.verify.median_s:>10.1f}{ledger.verify.per_s:>10,.0f}{_span(ledger.verify):>17}"
                f"  {ledger.intact}")
        add("")

    add("5. Peak resident memory (VmHWM) of each process:")
    rss = r["rss"]
    names = sorted(rss)
    for i in range(0, len(names), 4):
        add("   " + "  ".join(f"{n:>22} {_mb(rss[n])}" for n in names[i:i + 4]))
    if r["dead"]:
        add(f"   processes that died: {', '.join(r['dead'])}")
    add("")

    service_rss = [v for n, v in rss.items() if not n.endswith("reference") and v is not None]
    checks = [
        ("throughput >= 70 % of the reference (closed loop, at saturation)",
         c_rate / ref_rate >= TARGETS["throughput_ratio"], f"{c_rate / ref_rate:.0%}"),
        (f"70 % of the reference's throughput sustained ({at_rate.offered_per_s:.0f}/s offered)", sustained,
         f"{at_rate.accepted / at_rate.duration_s:.1f}/s accepted, {at_rate.errors + at_rate.not_sent} not answered or sent"),
        ("contribution p99 < 100 ms at that throughput", rate_p99 < TARGETS["p99_ms"],
         f"{rate_p99:.0f} ms (closed loop of {plan.clients} clients: {p99:.0f} ms)"),
        ("the rest keeps up", ok, why),
        # Issue 7: "at 300 contributions per second sustained": offered is not enough, the system
        # must take them, or a slower API would meet it by leaving the pipeline the CPU.
        ("voucher visible p99 < 1 s at 300/s sustained", percentile(e2e.visible_s, 0.99) < TARGETS["visible_p99_s"]
         and e2e.offered_per_s >= 300 and e2e.took_the_rate,
         f"{percentile(e2e.visible_s, 0.99) * 1000:.0f} ms at {e2e.offered_per_s:.0f}/s offered, "
         f"{e2e.accepted / e2e.duration_s:.0f}/s accepted"),
    ]
    if ledgers:
        big = all(x.events >= 1_000_000 for x in ledgers)
        for label, target, runs_of in (
            ("rebuild >= 200,000 events/s", TARGETS["rebuild_per_s"], lambda x: x.rebuild),
            ("verification >= 300,000 events/s", TARGETS["verify_per_s"], lambda x: x.verify),
        ):
            slowest = min(ledgers, key=lambda x: runs_of(x).per_s)
            runs = runs_of(slowest)
            checks.append((f"{label} (every service, 1M events)", runs.per_s >= target and big,
                           f"slowest {slowest.service} {runs.per_s:,.0f}/s (median of {len(runs.seconds)} runs; "
                           f"{_span(runs)})"))
    checks.append(("no service process above 250 MB RSS", max(service_rss, default=0) <= TARGETS["rss_mb"],
                   f"largest {max(service_rss, default=0):.0f} MB"))
    add("Targets (issue 7):")
    for label, met, value in checks:
        add(f"   [{'met' if met else 'NOT met':>7}] {label}: {value}")
    add(f"\nTotal time {r['elapsed_s'] / 60:.1f} min.")
    return "\n".join(out)


DOWNSTREAM = ("relays", "consumers", "jobs", "Kafka")
"""What a command costs after its API answered: publishing it, and the services reacting to it."""


def _cpu_split(system: Any, reference: Any, ref_rate: float) -> list[str]:
    """Section 1c: where the machine's CPU went per accepted command in the closed loops above,
    and the throughput that leaves for the system at most (``Split``s of ``bench.cpu``)."""
    cores = len(os.sched_getaffinity(0))
    lines = [
        "1c. Where the CPU went per accepted command in the closed loops of 1 (each process's CPU time from",
        "   /proc; the system's until the rest had drained; PostgreSQL and Kafka with every process they run;",
        "   PostgreSQL's split by the database each connection is to, the rest being the server's own processes",
        "   and connections that ended; the reference's connections are to the fund-account database):",
        f"   {'ms of CPU per command':30}{'system':>20}{'reference':>20}",
    ]
    names = [name for name in system.ms_per_command if name not in (CpuMeter.MACHINE, Split.REST)]
    for name in [*names, Split.REST, CpuMeter.MACHINE]:
        label = "total (the whole machine)" if name == CpuMeter.MACHINE else name
        lines.append(f"   {label:30}{_ms_or_unknown(system.ms_per_command.get(name)):>20}"
                     f"{_ms_or_unknown(reference.ms_per_command.get(name)):>20}")
        lines.extend(_shares(name, system, reference))
    lines.append(f"   {'cores busy (of ' + str(cores) + ')':30}{system.cores_busy:>20.2f}{reference.cores_busy:>20.2f}")
    downstream, loadgen = system.of(*DOWNSTREAM), system.of("load generator")
    reference_work = reference.of("the reference", "PostgreSQL")
    floor_ms = loadgen + downstream + reference_work
    if floor_ms > 0 and ref_rate > 0:
        ceiling = cores * 1000 / floor_ms
        lines += [
            f"   after its API answered, a command cost the system {downstream:.2f} ms more (relays, consumers, jobs and",
            "   Kafka, not counting their PostgreSQL work). Even with APIs and all PostgreSQL work as cheap as the",
            f"   reference's API and PostgreSQL ({reference_work:.2f} ms), and the load generator's "
            f"{loadgen:.2f} ms, the {cores} cores could",
            f"   take at most {ceiling:.0f} commands/s: {ceiling / ref_rate:.2f} x the reference's {ref_rate:.0f}/s, "
            "the highest throughput ratio these costs allow",
        ]
    return lines


def _shares(name: str, system: Any, reference: Any) -> list[str]:
    """A part's shares beneath it (PostgreSQL's by database), the largest first; the reference's
    rows are those of the database it shares with the fund-account service."""
    shares = system.shares.get(name, {})
    theirs = reference.shares.get(name, {})
    order = sorted((share for share in {*shares, *theirs} if share != Split.UNSHARED),
                   key=lambda share: -shares.get(share, 0.0))
    lines = []
    for share in [*order, Split.UNSHARED] if order else []:
        label = "the rest" if share == Split.UNSHARED else share
        lines.append(f"     {label:28}{_ms_or_unknown(shares.get(share)):>20}{_ms_or_unknown(theirs.get(share)):>20}")
    return lines


def _ms_or_unknown(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "not readable"


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "not within the time allowed"


def _span(runs: Runs) -> str:
    """The events/s of the slowest run and of the fastest, as ``slowest-fastest``."""
    slowest, fastest = runs.span
    return f"{slowest:,.0f}-{fastest:,.0f}"


def _mb(value: float | None) -> str:
    return f"{value:6.0f} MB" if value is not None else "     ? MB"
