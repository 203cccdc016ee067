"""The load while faults are injected: banks' systems sending contributions, purchases, income,
registrations and withdrawals to the platform, and races of two contributions at the edge of a
participant's yearly cap through two different API processes of the fund-account service.

Built from the benchmark's load generator (bench/workload.py: its world of registered
participants with fund accounts, its choice of amounts within the remaining quota); what is
added is what a bank does when the platform is in trouble: a request that got no answer
(connection refused or reset, a timeout) or a 5xx is sent again with the same Idempotency-Key,
to another API process of the service when there is one, until it is answered. Every answered
2xx is an acknowledged operation, recorded with what the platform said, for the checks after the
run; a request never answered is recorded as in doubt."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import httpx
import orjson

from bench.cluster import Cluster
from bench.workload import BANKS, PRODUCT, REGIONS, Participant, World, headers, registration, yuan
from pension_shared.clock import SHANGHAI, SettableClock
from pension_shared.money import parse_yuan

RETRIED_STATUSES = frozenset({500, 502, 503, 504})
MIX = {"contribution": 0.80, "purchase": 0.08, "income": 0.07, "registration": 0.05}
CLOCK_STEPS = (datetime(2025, 11, 1, 9, 0, tzinfo=SHANGHAI), datetime(2025, 12, 1, 9, 0, tzinfo=SHANGHAI))
"""The business clock moves on twice during the run, so instalments fall due (payout jobs)."""


@dataclass(frozen=True)
class Contribution:
    contribution_id: str
    participant_id: str
    fund_account_id: str
    amount: int
    year: int


@dataclass(frozen=True)
class Race:
    participant_id: str
    amount: int
    remaining_before: int
    accepted: int
    refused_for_cap: int
    other: tuple[int, ...]


@dataclass
class Acknowledged:
    """What the platform acknowledged (2xx) and what stayed in doubt (never answered)."""

    counts: Counter = field(default_factory=Counter)
    contributions: list[Contribution] = field(default_factory=list)
    income: dict[str, int] = field(default_factory=dict)
    """Fen credited, per participant."""
    purchases: dict[str, int] = field(default_factory=dict)
    withdrawals: dict[str, dict] = field(default_factory=dict)
    """withdrawal id -> the platform's answer (participant, plan)."""
    races: list[Race] = field(default_factory=list)
    in_doubt: dict[str, set[str]] = field(default_factory=dict)
    """Per operation kind, the participants with a request that was never answered."""
    statuses: Counter = field(default_factory=Counter)
    """(operation, status) of every answer, retried ones included."""
    retries: int = 0
    server_errors: list[str] = field(default_factory=list)
    """Every 500 answered (a crash, where a database outage must be a 503)."""

    def doubt(self, kind: str, participant_id: str) -> None:
        self.in_doubt.setdefault(kind, set()).add(participant_id)


class RetryingApi:
    """The services' API processes; a request is sent again with the same Idempotency-Key until
    answered with a status other than 5xx, or until ``give_up_at`` (monotonic)."""

    def __init__(self, bases: dict[str, list[str]], acked: Acknowledged, *, connections: int, timeout_s: float = 15) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.clients = {service: [httpx.AsyncClient(base_url=b, limits=limits, timeout=timeout_s) for b in service_bases]
                        for service, service_bases in bases.items()}
        self.acked = acked
        self.give_up_at = math.inf
        self._turn = 0

    async def post(self, op: str, service: str, path: str, body: dict, token: str, *, replica: int | None = None) -> httpx.Response | None:
        content, sent_headers = orjson.dumps(body), headers(token)
        clients = self.clients[service]
        attempt, pause = 0, 0.2
        while True:
            if replica is not None:
                client = clients[(replica + attempt) % len(clients)]
            else:
                self._turn += 1
                client = clients[(self._turn + attempt) % len(clients)]
            attempt += 1
            try:
                response = await client.post(path, content=content, headers=sent_headers)
            except httpx.HTTPError:
                response = None
            if response is not None:
                self.acked.statuses[(op, response.status_code)] += 1
                if response.status_code == 500:
                    self.acked.server_errors.append(f"{op} {path}: {response.text[:300]}")
                if response.status_code not in RETRIED_STATUSES:
                    return response
            if time.monotonic() >= self.give_up_at:
                return None
            self.acked.retries += 1
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 1.6, 2.0)

    async def get(self, service: str, path: str, token: str) -> httpx.Response | None:
        for attempt in range(60):
            client = self.clients[service][attempt % len(self.clients[service])]
            try:
                response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                if response.status_code not in RETRIED_STATUSES:
                    return response
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        return None

    async def close(self) -> None:
        for clients in self.clients.values():
            for client in clients:
                await client.aclose()


class ChaosLoad:
    def __init__(self, cluster: Cluster, world: World, *, clients: int, duration_s: float, race_every_s: float,
                 cap_pool: int, faults_pending: Callable[[], bool] = lambda: False, seed: int = 8) -> None:
        self.cluster = cluster
        self.random = random.Random(seed)
        people = list(world.participants)
        self.racers = people[:cap_pool]
        """Participants only the cap races contribute for: nothing else changes their quota."""
        self.people = people[cap_pool:]
        self.receiving = list(world.receiving)
        self.clients, self.duration_s, self.race_every_s = clients, duration_s, race_every_s
        self.faults_pending = faults_pending
        """The load goes on past ``duration_s`` while faults are still to be injected."""
        self.acked = Acknowledged()
        self.clock = SettableClock(cluster.workdir / "clock.json")

    async def run(self, log) -> Acknowledged:  # noqa: ANN001
        api = RetryingApi(self.cluster.apis, self.acked, connections=self.clients * 2 + 4)
        started = time.monotonic()
        self._end = started + self.duration_s
        # Requests under way when the load ends are still answered once the faults have stopped.
        api.give_up_at = math.inf
        try:
            await asyncio.gather(
                *(self._client(api) for _ in range(self.clients)), self._races(api), self._withdrawals(api),
                self._clock_steps(log), self._progress(api, log, started),
            )
        finally:
            await api.close()
        return self.acked

    # -- the tasks -----------------------------------------------------------------------------

    async def _client(self, api: RetryingApi) -> None:
        while self._running():
            roll, kind = self.random.random(), "contribution"
            for kind, share in MIX.items():
                roll -= share
                if roll < 0:
                    break
            if kind == "purchase" and await self._purchase(api):
                continue
            if kind == "income":
                await self._income(api)
            elif kind == "registration":
                await self._registration(api)
            elif not await self._contribution(api):
                await self._income(api)  # everyone has reached the cap: keep the load on

    async def _contribution(self, api: RetryingApi) -> bool:
        p = self._pick(lambda q: q.remaining >= 1_00)
        if p is None:
            return False
        amount = min(self.random.randint(20_00, 200_00), p.remaining)
        p.remaining -= amount
        body = {"amount": yuan(amount), "channel": "bank_transfer", "reference": f"C{self.random.getrandbits(48):012x}"}
        response = await api.post("contribution", "fund-account", f"/v1/fund-accounts/{p.fund_account_id}/contributions",
                                  body, f"dev-bank-{p.bank}")
        if response is None:
            self.acked.doubt("contribution", p.participant_id)
        elif response.status_code == 201:
            self._acknowledge_contribution(p, amount, response.json())
        elif response.json().get("code") == "CONTRIBUTION_CAP_EXCEEDED":
            p.remaining = 0
        else:
            p.remaining += amount
        return True

    def _acknowledge_contribution(self, p: Participant, amount: int, answer: dict) -> None:
        self.acked.counts["contribution"] += 1
        self.acked.contributions.append(Contribution(answer["contribution_id"], p.participant_id, p.fund_account_id,
                                                     amount, int(answer["year"])))
        p.cash += amount

    async def _purchase(self, api: RetryingApi) -> bool:
        p = self._pick(lambda q: q.cash >= 100_00)
        if p is None:
            return False
        amount = self.random.randint(10_00, min(p.cash, 200_00))
        p.cash -= amount
        response = await api.post("purchase", "fund-account", f"/v1/fund-accounts/{p.fund_account_id}/purchases",
                                  {"product_code": PRODUCT, "amount": yuan(amount)}, f"dev-bank-{p.bank}")
        if response is None:
            self.acked.doubt("purchase", p.participant_id)
        elif response.status_code == 201:
            self.acked.counts["purchase"] += 1
            self.acked.purchases[p.participant_id] = self.acked.purchases.get(p.participant_id, 0) + amount
        else:
            p.cash += amount
        return True

    async def _income(self, api: RetryingApi) -> None:
        p = self.people[self.random.randrange(len(self.people))]
        amount = self.random.randint(1, 50_00)
        response = await api.post("income", "fund-account", f"/v1/fund-accounts/{p.fund_account_id}/income",
                                  {"amount": yuan(amount), "kind": "interest"}, f"dev-bank-{p.bank}")
        if response is None:
            self.acked.doubt("income", p.participant_id)
        elif response.status_code == 201:
            self.acked.counts["income"] += 1
            self.acked.income[p.participant_id] = self.acked.income.get(p.participant_id, 0) + amount
            p.cash += amount

    async def _registration(self, api: RetryingApi) -> None:
        bank, region = self.random.choice(BANKS), self.random.choice(REGIONS)
        response = await api.post("registration", "account", "/v1/participants", registration(bank, region), f"dev-bank-{bank}")
        if response is not None and response.status_code == 201:
            self.acked.counts["registration"] += 1

    async def _races(self, api: RetryingApi) -> None:
        """Two contributions at once, through two API processes, each of two thirds of what the
        participant may still contribute this year: both fit only if the cap is not enforced."""
        turn = 0
        while self._running():
            await asyncio.sleep(self.race_every_s)
            p = self.racers[turn % len(self.racers)]
            turn += 1
            view = await api.get("fund-account", f"/v1/fund-accounts/{p.fund_account_id}", f"dev-bank-{p.bank}")
            if view is None or view.status_code != 200:
                continue
            remaining = parse_yuan(view.json()["remaining_quota"])
            if remaining < 2:
                continue
            amount = remaining - remaining // 3  # two of them are more than the remaining quota
            path = f"/v1/fund-accounts/{p.fund_account_id}/contributions"

            async def one(replica: int) -> httpx.Response | None:
                body = {"amount": yuan(amount), "channel": "bank_transfer", "reference": f"R{self.random.getrandbits(48):012x}"}
                return await api.post("contribution", "fund-account", path, body, f"dev-bank-{p.bank}", replica=replica)

            answers = await asyncio.gather(one(0), one(1))
            accepted = refused = 0
            other = []
            for response in answers:
                if response is None:
                    self.acked.doubt("contribution", p.participant_id)
                    other.append(0)
                elif response.status_code == 201:
                    accepted += 1
                    self._acknowledge_contribution(p, amount, response.json())
                elif response.json().get("code") == "CONTRIBUTION_CAP_EXCEEDED":
                    refused += 1
                else:
                    other.append(response.status_code)
            self.acked.races.append(Race(p.participant_id, amount, remaining, accepted, refused, tuple(other)))

    async def _withdrawals(self, api: RetryingApi) -> None:
        """The receiving participants withdraw, spread over the run: lump sums and three instalments."""
        pool = list(self.receiving)
        if not pool:
            return
        gap = self.duration_s * 0.8 / len(pool)
        for index, p in enumerate(pool):
            await asyncio.sleep(gap)
            plan = {"method": "lump_sum"} if index % 2 == 0 else {"method": "installments", "installments": 3}
            response = await api.post("withdrawal", "payout", "/v1/withdrawals", {"participant_id": p.participant_id, **plan},
                                      f"dev-bank-{p.bank}")
            if response is None:
                self.acked.doubt("withdrawal", p.participant_id)
            elif response.status_code == 201:
                self.acked.counts["withdrawal"] += 1
                self.acked.withdrawals[response.json()["withdrawal_id"]] = {"participant_id": p.participant_id, **plan}

    async def _clock_steps(self, log) -> None:  # noqa: ANN001
        for step, moment in enumerate(CLOCK_STEPS, start=1):
            await asyncio.sleep(self.duration_s * step / (len(CLOCK_STEPS) + 1))
            self.clock.set(moment)
            log(f"  business clock set to {moment.isoformat()}")

    async def _progress(self, api: RetryingApi, log, started: float) -> None:  # noqa: ANN001
        every, shown = min(60.0, self.duration_s / 4), started
        while self._running():
            await asyncio.sleep(1)
            if time.monotonic() - shown >= every:
                shown = time.monotonic()
                answered = sum(self.acked.counts.values())
                log(f"  {shown - started:.0f} s: {answered} operations acknowledged, {self.acked.retries} retries, "
                    f"{sum(n for (_, s), n in self.acked.statuses.items() if s == 503)} answers 503")
        # Requests still under way are sent again for a while yet: the faults have stopped.
        api.give_up_at = time.monotonic() + 300

    def _running(self) -> bool:
        return time.monotonic() < self._end or self.faults_pending()

    def _pick(self, predicate) -> Participant | None:  # noqa: ANN001
        for _ in range(50):
            p = self.people[self.random.randrange(len(self.people))]
            if predicate(p):
                return p
        return next((p for p in self.people if predicate(p)), None)

