"""The life-cycle flows the event contract test drives through the HTTP API of the embedded
platform (in process, with a TestClient), so that the services really produce every event type
they can: a bank change confirmed and one refused, withdrawal applications rejected, sent back for
materials and approved, a monthly withdrawal whose method changes, an instalment the frozen fund
account refuses, a payment that keeps failing and is compensated, and deaths with heirs.

``Workers`` runs the relays, consumers and jobs of the platform as ``Platform.start_workers`` does,
but each with its own stop switch, so a flow can hold one service's consumer back for a moment:
that is how a bank change is refused (the payout service must not settle the inheritance before
the platform answers) and how an instalment meets a frozen account (the platform must not
confirm the bank change before the instalment falls due), without racing the threads."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from fastapi.testclient import TestClient

from pension_cli.platform import Platform
from pension_payout.domain.participants import FUND_ACCOUNT_NOTED, payee_stream
from pension_shared.envelope import Envelope
from pension_shared.messaging import OutgoingRecord
from pension_shared.relay import OutboxRelay
from pension_shared.runtime import run_job
from tests.support.requests import auth, eventually, random_id_number
from tests.support.tax_scenario import (
    OPERATOR, TAX_BUREAU, Participant, contribute, open_fund_account, payout_made, payout_reversed, register,
    wait_for_vouchers,
)

REGION = "410100"
AGENCY = auth(f"dev-agency-{REGION}")
WAIT_S = 60.0


@dataclass
class _Worker:
    stop: threading.Event
    thread: threading.Thread
    close: Callable[[], None] = lambda: None


@dataclass
class Workers:
    """The platform's background work, each relay, consumer and job switchable on its own."""

    platform: Platform
    _running: dict[tuple[str, str], _Worker] = field(default_factory=dict)

    def start(self) -> None:
        for ctx in self.platform.contexts:
            service = ctx.definition.name
            self._start(service, "relay")
            if ctx.definition.subscribes_to:
                self._start(service, "consumer")
            for job in ctx.definition.jobs(ctx):
                self._start(service, job.name)

    def _start(self, service: str, kind: str) -> None:
        ctx = self.platform.context(service)
        stop = threading.Event()
        close: Callable[[], None] = lambda: None
        if kind == "relay":
            relay = ctx.relay()
            target: Callable[[], None] = lambda: relay.run(stop)
        elif kind == "consumer":
            consumer = ctx.consumer()
            target, close = (lambda: consumer.run(stop)), consumer.close
        else:
            job = next(j for j in ctx.definition.jobs(ctx) if j.name == kind)
            target = lambda: run_job(job, stop)  # noqa: E731
        thread = threading.Thread(target=target, name=f"contract-{service}-{kind}", daemon=True)
        thread.start()
        self._running[(service, kind)] = _Worker(stop, thread, close)

    def _stop(self, service: str, kind: str) -> None:
        worker = self._running.pop((service, kind))
        worker.stop.set()
        worker.thread.join(timeout=10)
        assert not worker.thread.is_alive(), f"the {service} {kind} did not stop"
        worker.close()

    @contextmanager
    def paused(self, service: str, kind: str = "consumer") -> Iterator[None]:
        """Hold one worker back; it resumes from its committed offsets afterwards."""
        self._stop(service, kind)
        try:
            yield
        finally:
            self._start(service, kind)

    def stop(self) -> None:
        for service, kind in list(self._running):
            self._stop(service, kind)


def bank(code: str) -> dict[str, str]:
    return auth(f"dev-bank-{code}")


def set_clock(client: TestClient, now: str) -> None:
    response = client.put("/v1/ops/clock", json={"now": now}, headers=OPERATOR)
    assert response.status_code == 200, response.text


def _ok(response, status: int = 200) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    return response.json()


def _get(client: TestClient, path: str, headers: dict) -> dict | None:
    response = client.get(path, headers=headers)
    return response.json() if response.status_code == 200 else None


def member(client: TestClient, bank_code: str, *contributions: str) -> Participant:
    """Registered at ``bank_code`` (the social security card account too), with a fund account
    there that the platform has bound, and the contributions made."""
    participant = register(client, bank_code)
    open_fund_account(client, participant, bank_code)
    for amount in contributions:
        contribute(client, participant, amount, bank_code)
    eventually(lambda: (_get(client, f"/v1/participants/{participant.participant_id}", bank(bank_code)) or {})
               .get("fund_account"), timeout_s=WAIT_S)
    return participant


def apply_for_withdrawal(client: TestClient, participant: Participant, bank_code: str, condition: str) -> str:
    return _ok(client.post("/v1/withdrawal-applications", headers=bank(bank_code), json={
        "participant_id": participant.participant_id, "condition": condition, "evidence": ["certificate-1"]}),
        201)["application_id"]


def decide(client: TestClient, application_id: str, decision: str, reason: str | None = None) -> str:
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    return _ok(client.post(f"/v1/withdrawal-applications/{application_id}/decision", json=body,
                           headers=AGENCY))["status"]


def receiving(client: TestClient, participant: Participant, bank_code: str, *, condition: str = "incapacity",
              reject_first: bool = False, materials_first: bool = False) -> None:
    """Apply through the holding bank; the agency of the insured region decides; wait until the
    payout service lets the participant withdraw."""
    if reject_first:
        refused = apply_for_withdrawal(client, participant, bank_code, condition)
        assert decide(client, refused, "rejected", "the certificate is not from a designated hospital") == "rejected"
    application_id = apply_for_withdrawal(client, participant, bank_code, condition)
    if materials_first:
        sent_back = decide(client, application_id, "materials_requested", "the certificate is unsigned")
        assert sent_back == "materials_requested"
    assert decide(client, application_id, "approved") == "approved"
    eventually(lambda: (_get(client, f"/v1/participants/{participant.participant_id}", bank(bank_code)) or {})
               .get("status") == "receiving", timeout_s=WAIT_S)


def withdraw(client: TestClient, participant: Participant, bank_code: str, **plan) -> str:
    """POST /v1/withdrawals once the payout service knows the participant receives."""
    def attempt() -> str | None:
        response = client.post("/v1/withdrawals", headers=bank(bank_code),
                               json={"participant_id": participant.participant_id, **plan})
        return response.json()["withdrawal_id"] if response.status_code == 201 else None
    return eventually(attempt, timeout_s=WAIT_S)


def withdrawal(client: TestClient, withdrawal_id: str) -> dict:
    return _ok(client.get(f"/v1/withdrawals/{withdrawal_id}", headers=OPERATOR))


def wait_withdrawal(client: TestClient, withdrawal_id: str, probe: Callable[[dict], bool]) -> dict:
    def probed() -> dict | None:
        view = withdrawal(client, withdrawal_id)
        return view if probe(view) else None
    return eventually(probed, timeout_s=WAIT_S)


def payouts_with(status: str, count: int) -> Callable[[dict], bool]:
    return lambda view: sum(p["status"] == status for p in view["payouts"]) >= count


def request_bank_change(client: TestClient, participant: Participant, old_bank: str, new_bank: str) -> str:
    return _ok(client.post(f"/v1/fund-accounts/{participant.fund_account_id}/bank-change", headers=bank(old_bank),
                           json={"new_bank_code": new_bank, "new_branch_city": "110000"}), 202)["bank_change_id"]


def wait_bank_change(client: TestClient, bank_change_id: str, bank_code: str, status: str) -> dict:
    return eventually(lambda: (change := _get(client, f"/v1/fund-accounts/bank-changes/{bank_change_id}",
                                              bank(bank_code))) and change["status"] == status and change,
                      timeout_s=WAIT_S)


def register_death(client: TestClient, participant: Participant, date_of_death: str) -> None:
    heirs = [{"name": name, "id_number": random_id_number("19900101"), "share": share,
              "payee_account": {"bank_code": "BOC", "account_number": f"621700000000{n}"}}
             for n, (name, share) in enumerate((("继承人甲", "0.6"), ("继承人乙", "0.4")), start=1)]
    _ok(client.post(f"/v1/participants/{participant.participant_id}/death", headers=AGENCY,
                    json={"date_of_death": date_of_death, "heirs": heirs}), 201)


def wait_payout_knows_account(workers: Workers, participant: Participant, fund_account_id: str) -> None:
    """The payout service has noted the participant's fund account (there is no HTTP view of it):
    an inheritance started before it would be recorded against the old account."""
    ctx = workers.platform.context("payout")

    def noted() -> bool:
        with ctx.engine.connect() as conn:
            stream = ctx.store.load(conn, payee_stream(participant.participant_id))
        return any(e.event_type.name == FUND_ACCOUNT_NOTED and e.data["fund_account_id"] == fund_account_id
                   for e in stream.events)
    eventually(noted, timeout_s=WAIT_S)


def wait_account_closed(client: TestClient, fund_account_id: str, bank_code: str) -> None:
    eventually(lambda: (_get(client, f"/v1/fund-accounts/{fund_account_id}", bank(bank_code)) or {})
               .get("status") == "closed", timeout_s=WAIT_S)


def drive_life_cycle(client: TestClient, workers: Workers) -> None:
    """Every flow that makes the services produce their other event types; the business clock
    ends on 2025-11-10 (A-PAY-3: methods change from 2025-09-01)."""
    set_clock(client, "2025-10-09T10:00:00+08:00")
    moving = member(client, "ICBC", "3000.00")
    product = _ok(client.get("/v1/products", headers=bank("ICBC")))["items"][0]["product_code"]
    _ok(client.post(f"/v1/fund-accounts/{moving.fund_account_id}/purchases", headers=bank("ICBC"),
                    json={"product_code": product, "amount": "1000.00"}), 201)
    retiring = member(client, "ICBC", "12000.00")
    failing = member(client, "ABC", "3000.00")
    deceased = member(client, "ICBC", "1000.00")

    # A bank change the next day (none on a day with a contribution, A-CHG-6): frozen, confirmed
    # with the remaining quota, cash and holdings moved in kind, the old account closed.
    set_clock(client, "2025-10-10T10:00:00+08:00")
    change = request_bank_change(client, moving, "ICBC", "CCB")
    new_account = wait_bank_change(client, change, "CCB", "completed")["new_fund_account_id"]
    eventually(lambda: (_get(client, f"/v1/participants/{moving.participant_id}", bank("CCB")) or {})
               .get("fund_account", {}).get("fund_account_id") == new_account, timeout_s=WAIT_S)

    # A payment to a bank that keeps refusing: three attempts, the withholding reversed, the gross
    # refunded into the fund account, the instalment compensated.
    receiving(client, failing, "ABC")
    _ok(client.put("/v1/ops/payout/failing-banks/ABC", json={"failing": True}, headers=OPERATOR))
    try:
        lump_sum = withdraw(client, failing, "ABC", method="lump_sum")
        wait_withdrawal(client, lump_sum, payouts_with("compensated", 1))
    finally:
        _ok(client.put("/v1/ops/payout/failing-banks/ABC", json={"failing": False}, headers=OPERATOR))

    # A death registered, then a bank change the platform refuses (the person is deceased): the
    # old account is unfrozen. The payout service waits, so the inheritance cannot close the
    # account first; then it settles the inheritance between two heirs.
    with workers.paused("payout"):
        register_death(client, deceased, "2025-10-09")
        refused = request_bank_change(client, deceased, "ICBC", "CCB")
        wait_bank_change(client, refused, "ICBC", "aborted")
    wait_account_closed(client, deceased.fund_account_id, "ICBC")

    # Applications rejected, sent back for materials, approved; a monthly withdrawal whose method
    # changes after its first payout.
    receiving(client, retiring, "ICBC", reject_first=True, materials_first=True)
    monthly = withdraw(client, retiring, "ICBC", method="monthly", months=10)
    wait_withdrawal(client, monthly, payouts_with("paid", 1))
    _ok(client.put(f"/v1/withdrawals/{monthly}/method", headers=bank("ICBC"),
                   json={"method": "installments", "installments": 5}))

    # The second instalment falls due while the account is frozen for a bank change the platform
    # has not answered yet: refused, it settles without money; then the change completes.
    with workers.paused("account"):
        moved = request_bank_change(client, retiring, "ICBC", "CCB")
        set_clock(client, "2025-11-10T10:00:00+08:00")
        wait_withdrawal(client, monthly, lambda view: view["schedule"]["instalments_instructed"] == 2
                        and view["schedule"]["next_due"] == "2025-12-10")
    retiring_new = wait_bank_change(client, moved, "CCB", "completed")["new_fund_account_id"]

    # Death of a participant who is withdrawing: the withdrawal is superseded by the inheritance,
    # paid from the account at the new bank to two heirs, which empties and closes it.
    eventually(lambda: (_get(client, f"/v1/participants/{retiring.participant_id}", bank("CCB")) or {})
               .get("fund_account", {}).get("fund_account_id") == retiring_new, timeout_s=WAIT_S)
    wait_payout_knows_account(workers, retiring, retiring_new)
    register_death(client, retiring, "2025-11-09")
    wait_withdrawal(client, monthly, lambda view: view["status"] == "completed")
    wait_account_closed(client, retiring_new, "CCB")


def fund_account_event(name: str, participant_id: str, data: dict, *, time: str) -> OutgoingRecord:
    """A fund-account event built to its contract (ContributionReversed has no producer yet)."""
    unsigned = Envelope(
        id=str(uuid.uuid4()), source="/pension/fund-account", type=f"cn.pension.fund-account.{name}.v1", time=time,
        subject=participant_id, streamid=f"contract-test-{uuid.uuid4().hex}", sequence=1,
        data={"participant_id": participant_id, **data}, prevhash=None, hash="",
    )
    return OutgoingRecord("pension.fund-account", participant_id,
                          replace(unsigned, hash=unsigned.computed_hash()).to_json())


def drive_every_flow(platform: Platform, client: TestClient, workers: Workers) -> None:
    """Register, open a fund account, contribute, invest; a payout and its reversal as the payout
    service's contract describes them, a reversed contribution, a contribution for a participant
    not known yet; the life-cycle flows above; the year closed and its statements issued."""
    set_clock(client, "2025-03-10T10:00:00+08:00")
    participant = register(client)
    fund_account_id = open_fund_account(client, participant)
    contributions = [contribute(client, participant, amount) for amount in ("5000.00", "4000.00", "3000.00")]
    product = _ok(client.get("/v1/products", headers=bank("ICBC")))["items"][0]["product_code"]
    for path, body in (("purchases", {"product_code": product, "amount": "2000.00"}),
                       ("redemptions", {"product_code": product, "units": "100.000000", "proceeds": "101.00"}),
                       ("income", {"amount": "1.50", "kind": "interest"})):
        _ok(client.post(f"/v1/fund-accounts/{fund_account_id}/{path}", json=body, headers=bank("ICBC")), 201)
    wait_for_vouchers(client, participant.participant_id, 3)

    stranger = f"P{uuid.uuid4().hex[:20].upper()}"
    payout_id, paid = payout_made(participant, gross=1_234_567, tax=37_037, paid_at="2025-10-15T10:00:00+08:00")
    platform.transport.publisher("contract-test").publish([
        paid,
        payout_reversed(participant, payout_id, gross=1_234_567, tax=37_037, reversed_at="2025-10-16T10:00:00+08:00"),
        fund_account_event("ContributionReversed", participant.participant_id, {
            "fund_account_id": fund_account_id, "contribution_id": contributions[2], "amount": 300_000,
            "year": 2025, "reason": "returned to the payer"}, time="2025-10-17T10:00:00+08:00"),
        fund_account_event("ContributionReceived", stranger, {
            "fund_account_id": "FA-NOT-YET-KNOWN", "contribution_id": f"C{uuid.uuid4().hex[:20].upper()}",
            "amount": 10_000, "channel": "cash", "reference": "r", "year": 2025, "contributed_this_year": 10_000,
            "remaining_quota": 1_190_000, "cash_after": 10_000}, time="2025-10-17T10:00:00+08:00"),
    ])
    statement = f"/v1/tax/statements/{participant.participant_id}/2025"
    eventually(lambda: client.get(statement, headers=TAX_BUREAU).json()["tax_withheld"] == "0.00"
               and client.get(statement, headers=TAX_BUREAU).json()["contributed"] == "9000.00", timeout_s=WAIT_S)
    drive_life_cycle(client, workers)
    set_clock(client, "2026-01-01T00:00:01+08:00")
    eventually(lambda: client.get(statement, headers=TAX_BUREAU).json()["status"] == "issued", timeout_s=WAIT_S)
    wait_until_published(platform)


def wait_until_published(platform: Platform) -> None:
    """Until every service's outbox is published: what a read model shows is committed in its
    store, but reaches the log only when the relay has sent it (the statements issued last)."""

    relays = [OutboxRelay(ctx.engine, publisher=None) for ctx in platform.contexts]  # type: ignore[arg-type]
    eventually(lambda: not any(relay.backlog() for relay in relays), timeout_s=WAIT_S)
