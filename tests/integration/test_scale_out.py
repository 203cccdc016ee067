"""Scale-out in the production shape (issue 9): every role of every service as separate OS
processes on loopback, on PostgreSQL and Kafka, with several replicas of each role:

* two API replicas per service, behind a small round-robin client;
* one outbox relay per service, two for fund-account (one active, one standby: the lease);
* three consumer instances per service in one consumer group;
* the tax and payout jobs.

A stream of registrations, fund account openings and contributions runs through the APIs while
one consumer instance of every service and one fund-account API replica are killed with SIGKILL.
The client does what a bank must do: when a request fails without an answer it sends the same
request, with the same Idempotency-Key, to the other replica.

Then: no acknowledged contribution is lost or doubled in the fund-account ledger, on the platform
(account ledger) or as a tax voucher; each participant's events keep their order in every
service; and the yearly cap holds when one participant is hit through both replicas at once.

The topics get a random prefix (PENSION_TOPIC_PREFIX), so they are created fresh with
PENSION_TOPIC_PARTITIONS=12 partitions and hold only this test's events.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pension_shared.clock import SHANGHAI, SettableClock
from pension_shared.testing import free_ports, random_id
from tests.support.requests import auth, eventually, registration

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

MODULES = {
    "account": "pension_account",
    "fund-account": "pension_fund_account",
    "tax": "pension_tax",
    "payout": "pension_payout",
}
JOBS = ("tax", "payout")
RELAYS = {"account": 1, "fund-account": 2, "tax": 1, "payout": 1}
CONSUMERS_PER_SERVICE = 3
API_REPLICAS = 2

PARTICIPANTS = 24
CONTRIBUTIONS_EACH = 3
AMOUNT = "1000.00"
CAP_FEN = 12_000_00
RACE_AMOUNT_FEN = 700_00
RACE_REQUESTS = 30  # floor(12000 / 700) = 17 of them fit under the cap

READY_PATH = "/ready"
BANK = auth("dev-bank-ICBC")


# ---------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    role: str
    popen: subprocess.Popen
    log: Path
    killed: bool = False

    def kill(self) -> None:
        self.killed = True
        self.popen.send_signal(signal.SIGKILL)

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, dict[str, str]]
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, list[int]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def spawn(self, service: str, role: str, *args: str, tag: str = "") -> Proc:
        name = f"{service}-{role}{tag}"
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", MODULES[service], role, *args], env=self.env[service],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        proc = Proc(name, role, popen, log)
        self.procs.append(proc)
        return proc

    def find(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {p.name} (exit {p.popen.poll()})\n{p.tail()}" for p in self.procs
        )


def _wait_ready(cluster: Cluster, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    pending = {f"http://127.0.0.1:{port}" for ports in cluster.ports.values() for port in ports}
    last: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for base in sorted(pending):
            try:
                response = httpx.get(base + READY_PATH, timeout=5)
            except httpx.TransportError as exc:
                last[base] = repr(exc)
                continue
            last[base] = f"{response.status_code} {response.text}"
            if response.status_code == 200:
                pending.discard(base)
        dead = [p for p in cluster.procs if p.popen.poll() is not None and p.role != "migrate" and not p.killed]
        assert not dead, "processes died at start:\n" + "\n".join(f"--- {p.name}\n{p.tail()}" for p in dead)
        if pending:
            time.sleep(0.3)
    assert not pending, (
        f"not ready within {timeout_s} s: " + "; ".join(f"{b} {READY_PATH} -> {last.get(b)}" for b in sorted(pending))
        + f"\n{cluster.diagnostics()}"
    )


@pytest.fixture
def cluster(new_postgres_database, kafka_bootstrap, tmp_path):
    clock_file = tmp_path / "clock.json"
    SettableClock(clock_file).set(datetime(2025, 8, 15, 9, 0, tzinfo=SHANGHAI))
    prefix = random_id("scale-")
    base_env = {
        **os.environ,
        "PENSION_ENV": "test",
        "PENSION_TRANSPORT": "kafka",
        "PENSION_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PENSION_CONSUMER_GROUP_PREFIX": prefix,
        "PENSION_TOPIC_PREFIX": prefix + ".",
        "PENSION_TOPIC_PARTITIONS": "12",
        "PENSION_CLOCK_FILE": str(clock_file),
        "PYTHONUNBUFFERED": "1",
    }
    base_env.pop("PENSION_TOKENS_FILE", None)
    urls = {service: new_postgres_database() for service in MODULES}
    env = {service: {**base_env, "PENSION_SERVICE": service, "PENSION_DATABASE_URL": url} for service, url in urls.items()}
    cluster = Cluster(tmp_path, env, urls=urls)
    started = time.monotonic()
    try:
        migrations = [cluster.spawn(service, "migrate") for service in MODULES]
        for proc in migrations:
            assert proc.popen.wait(timeout=120) == 0, f"{proc.name} failed:\n{proc.tail()}"
        ports = iter(free_ports(len(MODULES) * API_REPLICAS))
        for service in MODULES:
            cluster.ports[service] = []
            for replica in range(API_REPLICAS):
                port = next(ports)
                cluster.ports[service].append(port)
                cluster.spawn(service, "api", "--port", str(port), tag=f"-{replica}")
            for replica in range(RELAYS[service]):
                cluster.spawn(service, "relay", tag=f"-{replica}")
            for replica in range(CONSUMERS_PER_SERVICE):
                cluster.spawn(service, "consumer", tag=f"-{replica}")
            if service in JOBS:
                cluster.spawn(service, "jobs")
        _wait_ready(cluster)
        print(f"\nscale-out: {len(cluster.procs) - len(MODULES)} processes ready "
              f"{time.monotonic() - started:.1f} s after the migrations started")
        yield cluster
    except BaseException:
        print(cluster.diagnostics())
        raise
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------- the client


class Client:
    """Round-robin over a service's API replicas. A request that gets no answer (connection
    refused or reset: the replica died) or a retryable answer (5xx, 409 CONFLICT from a lost
    race) is sent again, with the same Idempotency-Key, to the next replica."""

    RETRYABLE_CODES = {"CONFLICT"}

    def __init__(self, ports: dict[str, list[int]]) -> None:
        self._bases = {s: [f"http://127.0.0.1:{p}" for p in ps] for s, ps in ports.items()}
        self._turn = {s: itertools.count() for s in ports}
        self._http = httpx.Client(timeout=30)
        self.retries = Counter()
        self._down: dict[str, float] = {}

    def close(self) -> None:
        self._http.close()

    def request(self, service: str, method: str, path: str, *, json_body: dict | None = None,
                headers: dict[str, str], replica: int | None = None, idempotent: bool = True) -> httpx.Response:
        bases = self._bases[service]
        first = next(self._turn[service]) if replica is None else replica
        if replica is None:  # skip a replica that just gave no answer, as a load balancer would
            up = [i for i in range(len(bases)) if self._down.get(bases[i], 0) < time.monotonic()]
            if up and first % len(bases) not in up:
                first = up[first % len(up)]
        key = str(uuid.uuid4())
        hdrs = {**headers, "Idempotency-Key": key} if method == "POST" and idempotent else headers
        deadline = time.monotonic() + 60
        attempt = 0
        while True:
            base = bases[(first + attempt) % len(bases)]
            attempt += 1
            try:
                response = self._http.request(method, base + path, json=json_body, headers=hdrs)
            except httpx.TransportError:
                self.retries["no answer"] += 1
                self._down[base] = time.monotonic() + 2
            else:
                retry = response.status_code >= 500 or (
                    response.status_code == 409 and _code(response) in self.RETRYABLE_CODES
                )
                if not retry:
                    return response
                self.retries[f"{response.status_code} {_code(response)}"] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} found no replica of {service} that answers")
            time.sleep(0.05 if attempt % len(bases) else 0.3)


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json().get("code")
    except ValueError:
        return None


# ---------------------------------------------------------------------------- the scenario


@dataclass
class Journey:
    participant_id: str = ""
    fund_account_id: str = ""
    contributions: list[str] = field(default_factory=list)


def _journey(client: Client, progress: Counter) -> Journey:
    journey = Journey()
    created = client.request("account", "POST", "/v1/participants", json_body=registration(), headers=BANK)
    assert created.status_code == 201, created.text
    journey.participant_id = created.json()["participant_id"]

    def opened() -> httpx.Response | None:
        response = client.request("fund-account", "POST", "/v1/fund-accounts", headers=BANK,
                                  json_body={"participant_id": journey.participant_id, "branch_city": "410100"})
        if _code(response) == "PARTICIPANT_NOT_FOUND":
            return None  # the fund-account service has not learnt of the registration yet
        return response

    response = eventually(opened, timeout_s=90, interval_s=0.2)
    assert response.status_code == 201, response.text
    journey.fund_account_id = response.json()["fund_account_id"]
    for n in range(CONTRIBUTIONS_EACH):
        paid = client.request(
            "fund-account", "POST", f"/v1/fund-accounts/{journey.fund_account_id}/contributions", headers=BANK,
            json_body={"amount": AMOUNT, "channel": "bank_transfer", "reference": f"{journey.participant_id}-{n}"},
        )
        assert paid.status_code == 201, paid.text
        journey.contributions.append(paid.json()["contribution_id"])
        progress["contributions"] += 1
    return journey


def _rows(url: str, sql: str, **params) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def _events(url: str, name: str) -> list[dict]:
    """The service's ledger events of one type, in ledger order, with their data."""
    rows = _rows(url, "SELECT position, stream_id, sequence, data FROM events WHERE type LIKE :t ORDER BY position",
                 t=f"%.{name}.v%")
    return [{"position": r.position, "stream_id": r.stream_id, "sequence": r.sequence, **json.loads(r.data)}
            for r in rows]


def test_replicas_of_every_role_lose_nothing_double_nothing_and_keep_order(cluster):
    started = time.monotonic()
    client = Client(cluster.ports)
    urls = cluster.urls
    progress: Counter = Counter()
    killed: list[str] = []

    def chaos() -> None:
        eventually(lambda: progress["contributions"] >= PARTICIPANTS * CONTRIBUTIONS_EACH // 3, timeout_s=150)
        for service in MODULES:
            victim = cluster.find(f"{service}-consumer-0")
            victim.kill()
            killed.append(victim.name)
        victim = cluster.find("fund-account-api-1")
        victim.kill()
        killed.append(victim.name)

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            journeys = list(pool.map(lambda _: _journey(client, progress), range(PARTICIPANTS)))
        killer.join(timeout=30)
        assert len(killed) == len(MODULES) + 1, f"the kills did not happen mid-stream: {killed}"
        streamed = time.monotonic()

        # The cap through both replicas at once: one fresh participant, concurrent contributions at
        # both fund-account replicas. One of them is dead by now: restart it to have two again.
        cluster.spawn("fund-account", "api", "--port", str(cluster.ports["fund-account"][1]), tag="-1b")
        _wait_ready(cluster)
        racer = Journey()
        racer.participant_id = client.request("account", "POST", "/v1/participants", json_body=registration(),
                                              headers=BANK).json()["participant_id"]

        def open_racer() -> httpx.Response | None:
            r = client.request("fund-account", "POST", "/v1/fund-accounts", headers=BANK,
                               json_body={"participant_id": racer.participant_id, "branch_city": "410100"})
            return None if _code(r) == "PARTICIPANT_NOT_FOUND" else r

        racer.fund_account_id = eventually(open_racer, timeout_s=60).json()["fund_account_id"]
        barrier = threading.Barrier(RACE_REQUESTS)

        def race(n: int) -> httpx.Response:
            barrier.wait()
            return client.request(
                "fund-account", "POST", f"/v1/fund-accounts/{racer.fund_account_id}/contributions", headers=BANK,
                json_body={"amount": f"{RACE_AMOUNT_FEN // 100}.00", "channel": "cash", "reference": f"race-{n}"},
                replica=n % 2,
            )

        with ThreadPoolExecutor(max_workers=RACE_REQUESTS) as pool:
            answers = list(pool.map(race, range(RACE_REQUESTS)))
        accepted = [a for a in answers if a.status_code == 201]
        refused = [a for a in answers if a.status_code != 201]
        assert len(accepted) == CAP_FEN // RACE_AMOUNT_FEN, [(a.status_code, a.text) for a in refused]
        assert {(a.status_code, _code(a)) for a in refused} == {(422, "CONTRIBUTION_CAP_EXCEEDED")}
        racer.contributions = [a.json()["contribution_id"] for a in accepted]
        journeys.append(racer)
    finally:
        client.close()

    acknowledged = {c: j.participant_id for j in journeys for c in j.contributions}
    assert len(acknowledged) == sum(len(j.contributions) for j in journeys), "a contribution_id was acknowledged twice"
    ours = {j.participant_id for j in journeys}

    # Fund-account ledger: each acknowledged contribution exactly once, nothing else for our people.
    received = [e for e in _events(urls["fund-account"], "ContributionReceived") if e["participant_id"] in ours]
    counts = Counter(e["contribution_id"] for e in received)
    assert {c for c, n in counts.items() if n > 1} == set(), "contributions doubled in the fund-account ledger"
    assert set(counts) == set(acknowledged), (
        f"lost: {set(acknowledged) - set(counts)}; unacknowledged: {set(counts) - set(acknowledged)}"
    )

    # The platform (account) and the tax vouchers learn of them through Kafka; wait for the consumers.
    # (The fresh consumer groups also replay what earlier tests left on the topics: count ours only.)
    def caught_up() -> bool:
        recorded = {e["contribution_id"] for e in _events(urls["account"], "ContributionRecorded")}
        vouchers = {r.contribution_id for r in _rows(urls["tax"], "SELECT contribution_id FROM vouchers")}
        return set(acknowledged) <= recorded and set(acknowledged) <= vouchers

    eventually(caught_up, timeout_s=90, interval_s=0.5)
    recorded = [e for e in _events(urls["account"], "ContributionRecorded") if e["participant_id"] in ours]
    assert Counter(e["contribution_id"] for e in recorded) == Counter(set(acknowledged)), "platform records lost or doubled"

    issued = [e for e in _events(urls["tax"], "DeductionVoucherIssued") if e["participant_id"] in ours]
    assert Counter(e["contribution_id"] for e in issued) == Counter(set(acknowledged)), "vouchers lost or doubled"
    vouchers = _rows(urls["tax"], "SELECT contribution_id, voucher_no, participant_id, cumulative_amount, position "
                                  "FROM vouchers ORDER BY position")
    vouchers = [v for v in vouchers if v.participant_id in ours]
    assert sorted(v.contribution_id for v in vouchers) == sorted(acknowledged)
    assert len({v.voucher_no for v in vouchers}) == len(vouchers), "a voucher number was issued twice"

    # Per-participant order: the platform and the tax service saw each participant's contributions
    # in the order the fund-account ledger received them, and the running totals never go back.
    by_participant: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for e in received:
        by_participant[e["participant_id"]]["fund-account"].append(e["contribution_id"])
    for e in recorded:
        by_participant[e["participant_id"]]["account"].append(e["contribution_id"])
        by_participant[e["participant_id"]]["account-totals"].append(e["contributed_this_year"])
    for e in issued:
        by_participant[e["participant_id"]]["tax"].append(e["contribution_id"])
    for v in vouchers:
        by_participant[v.participant_id]["tax-cumulative"].append(v.cumulative_amount)
    for participant_id, seen in by_participant.items():
        assert seen["account"] == seen["fund-account"], f"{participant_id}: platform order differs"
        assert seen["tax"] == seen["fund-account"], f"{participant_id}: voucher order differs"
        assert seen["account-totals"] == sorted(seen["account-totals"]), f"{participant_id}: totals went back"
        assert seen["tax-cumulative"] == sorted(seen["tax-cumulative"]), f"{participant_id}: cumulative went back"
    racer_totals = by_participant[racer.participant_id]["account-totals"]
    assert racer_totals[-1] == CAP_FEN // RACE_AMOUNT_FEN * RACE_AMOUNT_FEN

    # The ledgers stayed intact under it all.
    from pension_shared.verification import verify_ledger

    for service, url in urls.items():
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert verify_ledger(conn).intact, f"{service} ledger does not verify"
        finally:
            engine.dispose()

    died = [p.name for p in cluster.procs if p.popen.poll() is not None and not p.killed and p.role != "migrate"]
    assert died == [], f"processes died that nobody killed: {died}\n{cluster.diagnostics()}"
    print(f"scale-out: {len(acknowledged)} contributions of {len(journeys)} participants; "
          f"killed {killed}; client retries {dict(client.retries)}; stream {streamed - started:.1f} s, "
          f"total {time.monotonic() - started:.1f} s")
