"""The load generator: many banks' systems calling the platform at once (asyncio + httpx).

Participants are registered and given fund accounts at several banks first; then N concurrent
clients send contributions of random amounts within each participant's remaining annual quota,
with purchases, registrations and withdrawals mixed in, each request with its own
Idempotency-Key, as a bank's system would."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import orjson

from pension_account.domain.id_number import check_character

BANKS = ("ICBC", "ABC", "BOC", "CCB", "BCM", "CMB", "CITIC", "SPDB", "CIB", "PSBC")
REGIONS = ("410100", "110100", "310100", "440100", "330100")
PRODUCT = "BENCH-DEPOSIT-1"
CAP_FEN = 12_000_00
OPERATOR = "dev-operator"
YEAR = 2025


@dataclass
class Participant:
    participant_id: str
    bank: str
    region: str
    fund_account_id: str = ""
    remaining: int = CAP_FEN
    cash: int = 0


@dataclass
class World:
    participants: list[Participant] = field(default_factory=list)
    receiving: list[Participant] = field(default_factory=list)
    """Participants the agency approved for withdrawal: a withdrawal is made for each during the run."""


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    """Seconds, of accepted (2xx) requests."""
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.latencies)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


@dataclass
class RunStats:
    duration_s: float = 0.0
    ops: dict[str, OpStats] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def op(self, name: str) -> OpStats:
        return self.ops.setdefault(name, OpStats())

    def record(self, name: str, status: int, seconds: float) -> None:
        stats = self.op(name)
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            stats.latencies.append(seconds)

    def merge(self, other: "RunStats") -> "RunStats":
        merged = RunStats(self.duration_s + other.duration_s)
        for source in (self, other):
            for name, stats in source.ops.items():
                target = merged.op(name)
                target.latencies.extend(stats.latencies)
                for status, count in stats.statuses.items():
                    target.statuses[status] = target.statuses.get(status, 0) + count
            for error, count in source.errors.items():
                merged.errors[error] = merged.errors.get(error, 0) + count
        return merged

    @property
    def all_latencies(self) -> list[float]:
        return [x for stats in self.ops.values() for x in stats.latencies]

    @property
    def accepted(self) -> int:
        return sum(stats.accepted for stats in self.ops.values())


def random_id_number() -> str:
    first17 = f"{random.randint(110000, 659999)}{random.randint(1965, 1995)}0{random.randint(1, 9)}1{random.randint(0, 9)}{random.randint(0, 999):03d}"
    return first17 + check_character(first17)


def registration(bank: str, region: str) -> dict:
    return {
        "id_number": random_id_number(), "name": "张三", "insurance_type": "employee", "insured_region": region,
        "ss_card_account": {"bank_code": bank, "account_number": f"6222{random.randint(10**11, 10**12 - 1)}"},
        "channel": "bank",
    }


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


POOL = 16
"""Connections per httpx pool. A pool looks over its waiting requests and its connections each
time a request starts or ends, so one pool of 256 connections cost the load generator 5 to 9 ms of
CPU per request once the system fell behind (1.6 ms in the closed loop of 16), on the same two
cores as the system it measures; the open loop then measured the load generator as much as the
system. Many pools of 16 cost what one of 16 does."""


class Api:
    """Connections to each API process, shared by every simulated bank, in pools of ``POOL``
    taken in turn; a service with several replicas gets its requests in turn (round robin, as a
    load balancer would)."""

    def __init__(self, bases: dict[str, str | list[str]], *, connections: int, timeout_s: float = 60) -> None:
        size = min(connections, POOL)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        clients = {
            service: [httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout_s)
                      for _ in range(math.ceil(connections / size))
                      for base in ([replicas] if isinstance(replicas, str) else replicas)]
            for service, replicas in bases.items()
        }
        self._clients = [client for replicas in clients.values() for client in replicas]
        self._replicas = {service: itertools.cycle(replicas) for service, replicas in clients.items()}

    def client(self, service: str) -> httpx.AsyncClient:
        return next(self._replicas[service])

    async def post(self, service: str, path: str, body: dict, token: str, *, attempts: int = 3) -> httpx.Response:
        """As a bank does: a request that got no answer (a kept-alive connection the server had
        just closed, a reset) is sent again with the same Idempotency-Key."""
        content, sent_headers = orjson.dumps(body), headers(token)
        for attempt in range(1, attempts + 1):
            try:
                return await self.client(service).post(path, content=content, headers=sent_headers)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    async def get(self, service: str, path: str, token: str = OPERATOR) -> httpx.Response:
        return await self.client(service).get(path, headers={"Authorization": f"Bearer {token}"})

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


# -- set-up ----------------------------------------------------------------------------------


async def _bounded(items: list, concurrency: int, work: Callable[[Any], Any]) -> list:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await work(item)

    return await asyncio.gather(*(one(item) for item in items))


async def _until(attempt: Callable[[], Any], *, timeout_s: float = 120, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await attempt()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise RuntimeError(f"set-up step not reached within {timeout_s} s (last: {last!r})")


async def prepare_world(bases: dict[str, str], *, participants: int, withdrawers: int, concurrency: int = 24) -> World:
    api = Api(bases, connections=concurrency)
    try:
        listed = await api.post("fund-account", "/v1/products", {
            "product_code": PRODUCT, "name": "Benchmark deposit", "product_type": "savings_deposit",
            "eligible_from": "2024-01-01"}, OPERATOR)
        if listed.status_code != 201:
            raise RuntimeError(f"listing the product failed: {listed.status_code} {listed.text}")
        people = [Participant("", BANKS[i % len(BANKS)], REGIONS[i % len(REGIONS)]) for i in range(participants + withdrawers)]
        await _bounded(people, concurrency, lambda p: _register(api, p))
        await _bounded(people, concurrency, lambda p: _open_account(api, p))
        world = World(people[:participants], people[participants:])
        await _bounded(world.receiving, concurrency, lambda p: _make_receiving(api, p))
        return world
    finally:
        await api.close()


async def _register(api: Api, p: Participant) -> None:
    response = await api.post("account", "/v1/participants", registration(p.bank, p.region), f"dev-bank-{p.bank}")
    if response.status_code != 201:
        raise RuntimeError(f"registration failed: {response.status_code} {response.text}")
    p.participant_id = response.json()["participant_id"]


async def _open_account(api: Api, p: Participant) -> None:
    """Once the platform's registration reached the fund-account service."""
    async def attempt() -> bool:
        response = await api.post("fund-account", "/v1/fund-accounts",
                                  {"participant_id": p.participant_id, "branch_city": p.region}, f"dev-bank-{p.bank}")
        if response.status_code == 201:
            p.fund_account_id = response.json()["fund_account_id"]
            return True
        return False

    await _until(attempt, interval_s=0.5)


async def long_history(bases: dict[str, str], *, contributions: int) -> list[float]:
    """One new participant's account given ``contributions`` contributions of 1 yuan one after
    another (a person paying in for decades), by one client: the latency of each, in order."""
    api = Api(bases, connections=1)
    try:
        p = Participant("", BANKS[0], REGIONS[0])
        await _register(api, p)
        await _open_account(api, p)
        latencies = []
        for n in range(contributions):
            body = {"amount": "1.00", "channel": "bank_transfer", "reference": f"long-{n}"}
            started = time.perf_counter()
            response = await api.post("fund-account", f"/v1/fund-accounts/{p.fund_account_id}/contributions", body,
                                      f"dev-bank-{p.bank}")
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"contribution {n} of the long history failed: {response.text}")
        return latencies
    finally:
        await api.close()


async def _make_receiving(api: Api, p: Participant) -> None:
    """Contribute, apply for withdrawal at the bank, the agency approves: the participant is receiving."""
    bank = f"dev-bank-{p.bank}"
    contributed = await api.post("fund-account", f"/v1/fund-accounts/{p.fund_account_id}/contributions",
                                 {"amount": "3000.00", "channel": "bank_transfer", "reference": "bench"}, bank)
    if contributed.status_code != 201:
        raise RuntimeError(f"contribution failed: {contributed.text}")

    async def apply() -> str | None:
        response = await api.post("account", "/v1/withdrawal-applications",
                                   {"participant_id": p.participant_id, "condition": "retirement_age", "evidence": ["bench"]}, bank)
        return response.json()["application_id"] if response.status_code == 201 else None

    application_id = await _until(apply, interval_s=0.5)
    decided = await api.post("account", f"/v1/withdrawal-applications/{application_id}/decision",
                             {"decision": "approved"}, f"dev-agency-{p.region}")
    if decided.status_code != 200:
        raise RuntimeError(f"decision failed: {decided.text}")


# -- the closed-loop workload ----------------------------------------------------------------


class Workload:
    """Chooses each client's next request. Amounts stay within the quota the participant has
    left (tracked as the platform answers), so refusals are the exception, as in real life."""

    def __init__(self, world: World, *, mix: dict[str, float], seed: int = 7) -> None:
        self.world = world
        self.mix = mix
        self.random = random.Random(seed)
        self.withdrawals = list(world.receiving)

    def next_op(self) -> tuple[str, str, str, dict, str, Callable[[httpx.Response], None]]:
        roll = self.random.random()
        for name, share in self.mix.items():
            roll -= share
            if roll < 0:
                break
        if name == "withdrawal" and self.withdrawals:
            return self._withdrawal()
        if name == "purchase":
            op = self._purchase()
            if op is not None:
                return op
        if name == "registration":
            return self._registration()
        return self._contribution()

    def _pick(self, predicate: Callable[[Participant], bool]) -> Participant | None:
        people = self.world.participants
        for _ in range(50):
            p = people[self.random.randrange(len(people))]
            if predicate(p):
                return p
        return next((p for p in people if predicate(p)), None)

    def _contribution(self):  # noqa: ANN202
        p = self._pick(lambda q: q.remaining >= 1_00)
        if p is None:
            raise RuntimeError("every participant has reached the annual cap: register more participants")
        amount = min(self.random.randint(20_00, 200_00), p.remaining)
        p.remaining -= amount

        def done(response: httpx.Response) -> None:
            if response.status_code == 201:
                p.cash += amount
            else:
                p.remaining += amount

        body = {"amount": yuan(amount), "channel": "bank_transfer", "reference": f"R{self.random.getrandbits(48):012x}"}
        return "contribution", "fund-account", f"/v1/fund-accounts/{p.fund_account_id}/contributions", body, f"dev-bank-{p.bank}", done

    def _purchase(self):  # noqa: ANN202
        p = self._pick(lambda q: q.cash >= 100_00)
        if p is None:
            return None
        amount = self.random.randint(10_00, min(p.cash, 200_00))
        p.cash -= amount

        def done(response: httpx.Response) -> None:
            if response.status_code != 201:
                p.cash += amount

        body = {"product_code": PRODUCT, "amount": yuan(amount)}
        return "purchase", "fund-account", f"/v1/fund-accounts/{p.fund_account_id}/purchases", body, f"dev-bank-{p.bank}", done

    def _registration(self):  # noqa: ANN202
        bank, region = self.random.choice(BANKS), self.random.choice(REGIONS)
        return "registration", "account", "/v1/participants", registration(bank, region), f"dev-bank-{bank}", lambda _r: None

    def _withdrawal(self):  # noqa: ANN202
        p = self.withdrawals.pop()
        body = {"participant_id": p.participant_id, "method": "lump_sum"}
        return "withdrawal", "payout", "/v1/withdrawals", body, f"dev-bank-{p.bank}", lambda _r: None


async def closed_loop(bases: dict[str, str | list[str]], workload: Workload, *, clients: int, duration_s: float) -> RunStats:
    """``clients`` banks' connections, each sending its next request as soon as the last is answered."""
    api = Api(bases, connections=clients)
    stats = RunStats()
    started = time.perf_counter()
    end = started + duration_s

    async def client() -> None:
        while time.perf_counter() < end:
            name, service, path, body, token, done = workload.next_op()
            t0 = time.perf_counter()
            try:
                response = await api.post(service, path, body, token)
            except httpx.HTTPError as exc:
                stats.errors[type(exc).__name__] = stats.errors.get(type(exc).__name__, 0) + 1
                continue
            stats.record(name, response.status_code, time.perf_counter() - t0)
            done(response)

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await api.close()
    stats.duration_s = time.perf_counter() - started
    return stats


# -- open loop: requests sent on a schedule, whether or not earlier ones were answered ----------


@dataclass
class OpenLoop:
    offered_per_s: float
    duration_s: float
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    errors: int = 0
    not_sent: int = 0
    """Due while ``max_in_flight`` requests were already waiting: the system was saturated."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from when each accepted request was due to its answer: a request the load
    generator could not send on time waits in the figure too (no coordinated omission)."""

    @property
    def took_the_rate(self) -> bool:
        """Whether the system took the rate offered: every request sent when due and answered,
        and at least 99 % of them accepted."""
        return (self.accepted >= 0.99 * self.offered_per_s * self.duration_s
                and not self.not_sent and not self.errors)


async def _on_schedule(rate_per_s: float, duration_s: float, max_in_flight: int, result: OpenLoop,
                       send: Callable[[int, float], Any]) -> list[asyncio.Task]:
    """``send(index, due)`` started for each request as it falls due; the tasks started."""
    started = time.perf_counter()
    tasks: list[asyncio.Task] = []
    in_flight = 0

    async def one(index: int, due: float) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await send(index, due)
        finally:
            in_flight -= 1

    for index in range(int(rate_per_s * duration_s)):
        due = started + index / rate_per_s
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            result.not_sent += 1
            continue
        tasks.append(asyncio.create_task(one(index, due)))
        result.sent += 1
    return tasks


async def _settle(tasks: list[asyncio.Task], result: OpenLoop, deadline: float) -> None:
    """What the system could not answer by ``deadline`` is counted, not awaited."""
    done, late = await asyncio.wait(tasks, timeout=max(deadline - time.perf_counter(), 1)) if tasks else (set(), set())
    for task in late:
        task.cancel()
    result.errors += len(late)


async def open_loop(bases: dict[str, str], workload: Workload, *, rate_per_s: float, duration_s: float,
                    max_in_flight: int = 256) -> OpenLoop:
    """Contributions at a fixed offered rate, each answer's latency counted from when it was due:
    the latency the system gives at that throughput."""
    api = Api(bases, connections=max_in_flight, timeout_s=20)
    result = OpenLoop(rate_per_s, duration_s)

    async def send(_index: int, due: float) -> None:
        _, service, path, body, token, done = workload._contribution()
        try:
            response = await api.post(service, path, body, token)
        except httpx.HTTPError:
            result.errors += 1
            return
        done(response)
        if response.status_code == 201:
            result.accepted += 1
            result.latencies.append(time.perf_counter() - due)
        else:
            result.refused += 1

    started = time.perf_counter()
    try:
        tasks = await _on_schedule(rate_per_s, duration_s, max_in_flight, result, send)
        await _settle(tasks, result, started + duration_s + 15)
    finally:
        await api.close()
    return result


# -- end-to-end: an accepted contribution until its voucher is readable ----------------------


VOUCHER_POLL_S = 0.02
"""How long a follower waits between two reads of the vouchers: the figures are at most that
(and a read) late. The reads are load on the system measured, and counted: in a quick run's
phase (100/s offered, every 4th followed) 1,414 reads took the tax API 2.97 s of CPU, as much as
the fund-account API took to accept the 800 contributions. Every 50 ms, 914 reads took 2.32 s,
and the figures were 16-30 ms later: the resolution is worth more than the CPU."""


@dataclass
class EndToEnd(OpenLoop):
    visible_s: list[float] = field(default_factory=list)
    """From the contribution's 201 to its voucher first read at the tax API (tracked sample)."""
    tracked: int = 0
    not_visible: int = 0
    poll_s: float = VOUCHER_POLL_S
    polls: int = 0
    """Requests to the tax API that following the sample took: load on the system measured."""


async def end_to_end(bases: dict[str, str], workload: Workload, *, rate_per_s: float, duration_s: float,
                     track_every: int, poll_s: float = VOUCHER_POLL_S, visible_timeout_s: float = 30,
                     max_in_flight: int = 256) -> EndToEnd:
    """Contributions at a fixed offered rate (open loop); every ``track_every``-th accepted one is
    followed until the tax API shows its voucher."""
    api = Api(bases, connections=max_in_flight, timeout_s=20)
    result = EndToEnd(rate_per_s, duration_s, poll_s=poll_s)
    followers: list[asyncio.Task] = []
    fund_accounts = {p.fund_account_id: p.participant_id for p in workload.world.participants}

    async def follow(participant_id: str, contribution_id: str, accepted_at: float) -> None:
        deadline = accepted_at + visible_timeout_s
        while time.perf_counter() < deadline:
            result.polls += 1
            try:
                response = await api.get("tax", f"/v1/tax/vouchers?participant_id={participant_id}&year={YEAR}&limit=500")
            except httpx.HTTPError:  # a kept-alive connection the server had just closed: ask again
                continue
            if response.status_code == 200 and any(v["contribution_id"] == contribution_id for v in response.json()["items"]):
                result.visible_s.append(time.perf_counter() - accepted_at)
                return
            await asyncio.sleep(poll_s)
        result.not_visible += 1

    async def send(index: int, due: float) -> None:
        _, service, path, body, token, done = workload._contribution()
        try:
            response = await api.post(service, path, body, token)
        except httpx.HTTPError:
            result.errors += 1
            return
        accepted_at = time.perf_counter()
        done(response)
        if response.status_code != 201:
            result.refused += 1
            return
        result.accepted += 1
        result.latencies.append(accepted_at - due)
        if index % track_every == 0:
            result.tracked += 1
            followers.append(asyncio.create_task(
                follow(fund_accounts[path.split("/")[3]], response.json()["contribution_id"], accepted_at)))

    started = time.perf_counter()
    try:
        tasks = await _on_schedule(rate_per_s, duration_s, max_in_flight, result, send)
        await _settle(tasks, result, started + duration_s + 15)
        if followers:
            await asyncio.wait(followers, timeout=max(started + duration_s + 30 - time.perf_counter(), 1))
        for task in followers:
            if not task.done():
                task.cancel()
    finally:
        await api.close()
    return result
