"""``python -m chaos [--quick] [--duration S] [--faults N]``: fault injection under load (issue 8).
Run it through ``make chaos`` (or ``make chaos QUICK=1``), which starts the PostgreSQL and Kafka
it restarts (scripts/chaos.sh).

While the load runs (contributions, purchases, income, registrations, withdrawals paid by the
payout jobs on the business clock, races at the yearly cap), every kind of fault is injected
``--faults`` times, spread over the run: kill -9 of an API, a relay and a consumer process (the
services in turn), a Kafka broker restart, a PostgreSQL restart, and one service cut off from
the broker by a TCP proxy. Then the faults stop, the platform catches up, and the invariants are
checked. Prints operations acknowledged, faults injected, invariants checked and violations;
exits 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.backlog import Sampler
from bench.cluster import MODULES, Cluster, _ready
from bench.workload import prepare_world
from chaos import invariants
from chaos.faults import KINDS, Injector, Supervisor
from chaos.load import ChaosLoad
from chaos.proxy import Proxy, ProxyLoop
from pension_shared.clock import SettableClock, business_date


@dataclass(frozen=True)
class Plan:
    name: str
    duration_s: float
    faults: int
    participants: int
    cap_pool: int
    withdrawers: int
    clients: int
    race_every_s: float


FULL = Plan("full", duration_s=600, faults=30, participants=240, cap_pool=25, withdrawers=40, clients=6, race_every_s=3)
QUICK = Plan("quick", duration_s=90, faults=2, participants=50, cap_pool=6, withdrawers=6, clients=4, race_every_s=3)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"the short run ({QUICK.duration_s:.0f} s of load, "
                        f"{QUICK.faults} faults of each kind)")
    parser.add_argument("--duration", type=float, help="seconds of load (full: 600)")
    parser.add_argument("--faults", type=int, help="faults of each kind (full: 30)")
    parser.add_argument("--clients", type=int, help="concurrent clients of the load")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes it started on the way out
    plan = QUICK if args.quick else FULL
    plan = Plan(**{**plan.__dict__, **{k: v for k, v in (("duration_s", args.duration), ("faults", args.faults),
                                                          ("clients", args.clients)) if v}})
    sys.exit(run(plan))


def proxied_ports() -> list[tuple[int, int]]:
    """(broker listener port, proxy port) pairs of deploy/local/kafka.sh's PENSION_KAFKA_PROXIED."""
    pairs = [pair.split(":") for pair in os.environ.get("PENSION_KAFKA_PROXIED", "").split(",") if pair]
    if len(pairs) < len(MODULES):
        raise SystemExit(f"PENSION_KAFKA_PROXIED must name {len(MODULES)} proxied listeners (one per service); "
                         "run through scripts/chaos.sh")
    return [(int(port), int(shown)) for port, shown in pairs]


def run(plan: Plan) -> int:
    started = time.monotonic()
    server_url, kafka = os.environ["CHAOS_PG_URL"], os.environ["CHAOS_KAFKA"]
    workdir = Path(os.environ.get("CHAOS_INFRA_DIR", ".infra/chaos")) / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    loop = ProxyLoop()
    proxies = {service: Proxy(loop, listen_port=shown, target_port=port)
               for service, (port, shown) in zip(MODULES, proxied_ports())}
    for proxy in proxies.values():
        proxy.start()
    cluster = Cluster(workdir, server_url, kafka, prefix=f"chaos{uuid.uuid4().hex[:6]}.", database_prefix="chaos_",
                      kafka_for={s: f"127.0.0.1:{p.listen_port}" for s, p in proxies.items()},
                      api_replicas={"fund-account": 1}, with_reference=False)
    supervisor = Supervisor(cluster)
    try:
        return _run(plan, cluster, supervisor, proxies, started)
    finally:
        supervisor.stop()
        cluster.stop()
        for proxy in proxies.values():
            proxy.stop()
        loop.close()


def _run(plan: Plan, cluster: Cluster, supervisor: Supervisor, proxies: dict[str, Proxy], started: float) -> int:
    log(f"chaos ({plan.name}): {plan.duration_s:.0f} s of load, {plan.faults} faults of each kind")
    cluster.create_databases()
    cluster.start()
    log(f"{len(cluster.procs)} processes ready (each service's broker traffic through its proxy); "
        f"registering {plan.participants + plan.withdrawers} participants")
    world = asyncio.run(prepare_world(cluster.api, participants=plan.participants, withdrawers=plan.withdrawers))
    sampler = Sampler(cluster)
    drained = sampler.drain_s()
    if drained is None:
        raise RuntimeError("the set-up did not drain")
    deployment = invariants.deployment_of(cluster.database_urls, cluster.kafka, cluster.prefix)
    base = invariants.baseline(deployment)
    log(f"set-up done ({len(base.contributions)} contributions of the withdrawers); load and faults for {plan.duration_s:.0f} s")

    supervisor.start()
    injector = Injector(cluster, supervisor, proxies, duration_s=plan.duration_s, per_kind=plan.faults, log=log)
    load = ChaosLoad(cluster, world, clients=plan.clients, duration_s=plan.duration_s, race_every_s=plan.race_every_s,
                     cap_pool=plan.cap_pool, faults_pending=injector.pending)
    injector.start()
    load_started = time.monotonic()
    acked = asyncio.run(load.run(log))
    load_s = time.monotonic() - load_started
    log(f"load done after {load_s:.0f} s")
    injector.stop()
    t0 = time.monotonic()
    # After a long run on a busy machine the consumers may have much to catch up on.
    caught_up = catch_up(cluster, supervisor, sampler, timeout_s=max(600.0, 1.5 * load_s))
    catch_up_s = time.monotonic() - t0
    sampler.close()
    log(f"caught up in {catch_up_s:.0f} s" if caught_up is None else f"NOT caught up: {caught_up}")

    checks = invariants.check_all(deployment, acked, base)
    if caught_up is not None:
        checks.insert(0, invariants.Check("caught up after the faults", 1, [caught_up]))
    print(report(plan, acked, injector, supervisor, checks, catch_up_s, time.monotonic() - started, load_s))
    return 1 if any(c.violations for c in checks) or injector.failed() else 0


def catch_up(cluster: Cluster, supervisor: Supervisor, sampler: Sampler, *, timeout_s: float = 600) -> str | None:
    """Wait until every process runs and is ready, no outbox holds anything, no consumer lags and
    the payout jobs have nothing due or awaiting payment, three samples in a row. None when so,
    else what was still waiting."""
    deadline = time.monotonic() + timeout_s
    payout = sa.create_engine(cluster.database_urls["payout"], pool_size=1)
    clock = SettableClock(cluster.workdir / "clock.json")
    quiet, last, shown = 0, "nothing sampled", time.monotonic()
    try:
        while time.monotonic() < deadline:
            time.sleep(2)
            if time.monotonic() - shown > 20:
                log(f"  catching up: {last}")
                shown = time.monotonic()
            try:
                if not supervisor.all_running():
                    quiet, last = 0, "processes starting again"
                    continue
                unready = [b for bases in cluster.apis.values() for b in bases if not _answers_ready(b)]
                sample = sampler.sample()
                with payout.connect() as conn:
                    pending = conn.execute(sa.text(
                        "SELECT count(*) FROM withdrawals WHERE awaiting_payment OR (status = 'active' AND next_due <= :today)"),
                        {"today": business_date(clock.now())}).scalar_one()
            except Exception as exc:  # the platform is still coming back
                quiet, last = 0, f"{type(exc).__name__}: {exc}"
                continue
            if unready or sample.total or pending:
                quiet = 0
                last = f"not ready {unready}, outbox {sample.backlog}, lag {sample.lag}, payouts pending {pending}"
                continue
            quiet += 1
            if quiet >= 3:
                return None
        return last
    finally:
        payout.dispose()


def _answers_ready(base: str) -> bool:
    try:
        return _ready(httpx.get(base + "/ready", timeout=10))
    except httpx.HTTPError:
        return False


def report(plan: Plan, acked, injector: Injector, supervisor: Supervisor, checks, catch_up_s: float,  # noqa: ANN001
           elapsed_s: float, load_s: float) -> str:
    counts = injector.counts()
    lines = [
        "",
        f"== chaos ({plan.name}): {load_s:.0f} s of load with faults, caught up in {catch_up_s:.0f} s, "
        f"{elapsed_s / 60:.1f} min in all ==",
        f"operations acknowledged: {sum(acked.counts.values())} ("
        + ", ".join(f"{kind} {acked.counts[kind]}" for kind in ("contribution", "purchase", "income", "registration", "withdrawal"))
        + ")",
        f"  in doubt (never answered): {sum(len(v) for v in acked.in_doubt.values())}; retried requests: {acked.retries}; "
        f"answers 503: {sum(n for (_, s), n in acked.statuses.items() if s == 503)}; "
        f"answers 500: {len(acked.server_errors)}; cap races: {len(acked.races)}",
        f"faults injected: {sum(counts.values())} (" + ", ".join(f"{kind} {counts[kind]}" for kind in KINDS) + ")",
    ]
    by_target: dict[str, int] = {}
    for fault in injector.injected:
        if fault.ok and (fault.kind.startswith("kill") or fault.kind == "broker cut"):
            key = f"{fault.target}" if fault.kind.startswith("kill") else f"cut {fault.target}"
            by_target[key] = by_target.get(key, 0) + 1
    lines.append("  by target: " + ", ".join(f"{k} {v}" for k, v in sorted(by_target.items())))
    took = {kind: [f.took_s for f in injector.injected if f.kind == kind and f.ok] for kind in ("kafka restart", "postgres restart", "broker cut")}
    lines.append("  mean duration: " + ", ".join(f"{kind} {sum(v) / len(v):.1f} s" for kind, v in took.items() if v))
    if injector.failed():
        lines.append(f"  faults that could not be injected: {len(injector.failed())}: "
                     + "; ".join(f"{f.kind} {f.target}: {f.note}" for f in injector.failed()[:5]))
    lines.append(f"  processes started again by the supervisor: {supervisor.restarts} "
                 f"({len(supervisor.exits)} had exited on their own"
                 + (": " + ", ".join(sorted({e.name for e in supervisor.exits})) if supervisor.exits else "") + ")")
    violations = sum(len(c.violations) for c in checks)
    lines.append(f"invariants checked: {len(checks)} invariants, {sum(c.checked for c in checks)} checks")
    for check in checks:
        state = "ok" if not check.violations else f"{len(check.violations)} VIOLATION(S)"
        lines.append(f"  [{state}] {check.name} ({check.checked} checked)")
        for violation in check.violations[:5]:
            lines.append(f"      {violation}")
    lines.append(f"violations: {violations}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
