"""CommandRunner: one command, one transaction, remembered under its Idempotency-Key."""

import threading
import time

import pytest
import sqlalchemy as sa

from pension_shared.errors import ConcurrencyConflict, DomainError, IdempotencyKeyReused
from pension_shared.idempotency import CommandRunner, RefusedResponse, StoredResponse, fingerprint
from pension_shared.schema import events, idempotency_keys, outbox
from pension_shared.problems import render_domain_error
from shared_support.tally import TallyService, added, meta, stream_of

pytestmark = pytest.mark.postgres


class AddCommand:
    """The work of a command: adds to a tally, refuses amounts over 1000, counts its runs."""

    def __init__(self, tally: TallyService, subject: str, amount: int, *, hold_s: float = 0.0) -> None:
        self.tally, self.subject, self.amount, self.hold_s = tally, subject, amount, hold_s
        self.runs = 0
        self._lock = threading.Lock()

    def __call__(self, conn: sa.Connection) -> tuple[int, dict]:
        with self._lock:
            self.runs += 1
        stream = self.tally.store.load(conn, stream_of(self.subject))
        self.tally.store.append(conn, stream.stream_id, stream.version, [added(self.subject, self.amount)], meta())
        if self.hold_s:
            time.sleep(self.hold_s)
        if self.amount > 1000:
            raise DomainError("amount over the cap", code="CONTRIBUTION_CAP_EXCEEDED", remaining_quota="10.00")
        return 201, {"subject": self.subject, "version": stream.version + 1}


FP = fingerprint("POST", "/v1/tally", b'{"amount": 5}')


def test_fingerprint_ignores_json_formatting_but_not_content_method_or_path() -> None:
    assert fingerprint("POST", "/v1/x", b'{"a":1,"b":2}') == fingerprint("POST", "/v1/x", b'{ "b": 2, "a": 1 }')
    assert fingerprint("POST", "/v1/x", b'{"a":1}') != fingerprint("POST", "/v1/x", b'{"a":2}')
    assert fingerprint("POST", "/v1/x", b'{"a":1}') != fingerprint("PUT", "/v1/x", b'{"a":1}')
    assert fingerprint("POST", "/v1/x", b'{"a":1}') != fingerprint("POST", "/v1/y", b'{"a":1}')
    assert fingerprint("POST", "/v1/x", b"") == fingerprint("POST", "/v1/x", b"null")
    assert fingerprint("POST", "/v1/x", b"not json") != fingerprint("POST", "/v1/x", b"not json!")


def test_the_same_key_and_request_returns_the_first_response_without_running_twice(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    work = AddCommand(tally, "P1", 5)
    first = runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    second = runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    assert first == second == StoredResponse(201, {"subject": "P1", "version": 1})
    assert work.runs == 1
    assert tally.count(events) == tally.count(outbox) == 1
    assert tally.totals() == {"P1": (5, 1)}


def test_keys_are_scoped_per_institution(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    work = AddCommand(tally, "P1", 5)
    runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    assert runner.run(work, institution="bank:BOC", key="k-1", fingerprint=FP).body == {"subject": "P1", "version": 2}
    assert work.runs == 2


def test_the_same_key_with_a_different_request_is_refused(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    runner.run(AddCommand(tally, "P1", 5), institution="bank:ICBC", key="k-1", fingerprint=FP)
    other = AddCommand(tally, "P1", 6)
    with pytest.raises(IdempotencyKeyReused) as caught:
        runner.run(other, institution="bank:ICBC", key="k-1", fingerprint=fingerprint("POST", "/v1/tally", b'{"amount": 6}'))
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert other.runs == 0
    assert tally.totals() == {"P1": (5, 1)}


def test_a_refused_command_stores_the_refusal_replays_it_and_records_no_events(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    work = AddCommand(tally, "P1", 5000)
    with pytest.raises(RefusedResponse) as first:
        runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    with pytest.raises(RefusedResponse) as second:
        runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    assert work.runs == 1
    assert first.value.response == second.value.response
    assert first.value.response.status_code == 422
    body = first.value.response.body
    assert body["code"] == "CONTRIBUTION_CAP_EXCEEDED" and body["remaining_quota"] == "10.00"
    assert str(first.value) == "amount over the cap"
    assert tally.count(events) == tally.count(outbox) == 0
    assert tally.totals() == {}
    with tally.engine.connect() as conn:
        row = conn.execute(sa.select(idempotency_keys)).one()
    assert (row.institution, row.key, row.fingerprint, row.status_code) == ("bank:ICBC", "k-1", FP, 422)


def test_without_a_key_the_command_simply_runs_and_a_refusal_propagates(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    work = AddCommand(tally, "P1", 5)
    runner.run(work, institution="bank:ICBC", key=None, fingerprint=FP)
    runner.run(work, institution="bank:ICBC", key=None, fingerprint=FP)
    assert work.runs == 2
    with pytest.raises(DomainError, match="cap"):
        runner.run(AddCommand(tally, "P1", 5000), institution="bank:ICBC", key=None, fingerprint=FP)
    assert tally.totals() == {"P1": (10, 2)}
    assert tally.count(idempotency_keys) == 0


def test_a_concurrency_conflict_is_retried_with_a_fresh_transaction(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error, attempts=3)
    calls = []

    def flaky(conn: sa.Connection) -> tuple[int, dict]:
        calls.append(1)
        tally.store.append(conn, "tally-P1", 0, [added("P1", 1)], meta())
        if len(calls) < 3:
            raise ConcurrencyConflict("someone else wrote first", stream_id="tally-P1")
        return 200, {"ok": True}

    assert runner.run(flaky, institution="i", key="k", fingerprint=FP).body == {"ok": True}
    assert len(calls) == 3
    assert tally.count(events) == 1 and tally.count(idempotency_keys) == 1


def test_a_command_that_always_conflicts_gives_up_and_remembers_nothing(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error, attempts=2)

    def hopeless(conn: sa.Connection) -> tuple[int, dict]:
        raise ConcurrencyConflict("always", stream_id="x")

    with pytest.raises(ConcurrencyConflict):
        runner.run(hopeless, institution="i", key="k", fingerprint=FP)
    assert tally.count(idempotency_keys) == 0


def test_an_unexpected_error_remembers_nothing_so_the_key_can_be_retried(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)

    def crash(conn: sa.Connection) -> tuple[int, dict]:
        tally.store.append(conn, "tally-P1", 0, [added("P1", 1)], meta())
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        runner.run(crash, institution="i", key="k", fingerprint=FP)
    assert tally.count(idempotency_keys) == tally.count(events) == 0
    work = AddCommand(tally, "P1", 5)
    assert runner.run(work, institution="i", key="k", fingerprint=FP).status_code == 201


def test_concurrent_requests_with_the_same_key_run_the_work_once(tally: TallyService) -> None:
    runner = CommandRunner(tally.engine, render_domain_error)
    work = AddCommand(tally, "P1", 5, hold_s=0.3)  # the first holds its transaction open a while
    barrier = threading.Barrier(4, timeout=30)
    results: list[object] = [None] * 4

    def request(index: int) -> None:
        barrier.wait()
        try:
            results[index] = runner.run(work, institution="bank:ICBC", key="same", fingerprint=FP)
        except Exception as exc:  # noqa: BLE001
            results[index] = exc

    threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [StoredResponse(201, {"subject": "P1", "version": 1})] * 4
    assert work.runs == 1
    assert tally.totals() == {"P1": (5, 1)}
    assert tally.count(events) == 1


def test_a_refusal_yields_to_a_duplicate_that_answered_while_it_was_being_stored(tally: TallyService) -> None:
    """A refused command's transaction is rolled back whole, the key row with it, and the refusal
    stored in a second one. A duplicate that got the key in between (and here succeeded, the state
    having changed) holds the answer: the refused request replays it instead of storing its own."""
    duplicate = AddCommand(tally, "P1", 5)

    def render_while_a_duplicate_runs(refusal: DomainError) -> StoredResponse:
        runner.run(duplicate, institution="bank:ICBC", key="k-1", fingerprint=FP)
        return render_domain_error(refusal)

    runner = CommandRunner(tally.engine, render_while_a_duplicate_runs)
    answer = runner.run(AddCommand(tally, "P1", 5000), institution="bank:ICBC", key="k-1", fingerprint=FP)
    assert answer == StoredResponse(201, {"subject": "P1", "version": 1})
    assert duplicate.runs == 1
    assert tally.totals() == {"P1": (5, 1)}
    with tally.engine.connect() as conn:
        assert conn.execute(sa.select(idempotency_keys.c.status_code)).scalar_one() == 201


class NotHeardYet(DomainError):
    code = "PARTICIPANT_NOT_FOUND"
    rests_on_others = True


class Heard:
    """The work of a command on a participant this service hears of from another one: refused
    until ``heard_after`` runs, as if the other service's event arrived meanwhile."""

    def __init__(self, tally: TallyService, heard_after: int | None) -> None:
        self.tally, self.heard_after, self.runs = tally, heard_after, 0

    def __call__(self, conn: sa.Connection) -> tuple[int, dict]:
        self.runs += 1
        if self.heard_after is None or self.runs <= self.heard_after:
            raise NotHeardYet("no participant P1")
        stream = self.tally.store.load(conn, stream_of("P1"))
        self.tally.store.append(conn, stream.stream_id, stream.version, [added("P1", 1)], meta())
        return 201, {"runs": self.runs}


class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("key", ["k-1", None])
def test_a_refusal_resting_on_other_services_events_is_decided_again_until_they_arrive(tally: TallyService,
                                                                                      key: str | None) -> None:
    time_ = FakeTime()
    runner = CommandRunner(tally.engine, render_domain_error, wait_s=2.0, sleep=time_.sleep, clock=lambda: time_.now)
    work = Heard(tally, heard_after=3)
    assert runner.run(work, institution="bank:ICBC", key=key, fingerprint=FP) == StoredResponse(201, {"runs": 4})
    assert work.runs == 4 and time_.now < 2.0
    assert tally.totals() == {"P1": (1, 1)}, "the refused attempts wrote nothing"
    if key is not None:
        again = runner.run(work, institution="bank:ICBC", key=key, fingerprint=FP)
        assert again == StoredResponse(201, {"runs": 4}) and work.runs == 4, "the key keeps the success, not a refusal"


@pytest.mark.parametrize("key", ["k-1", None])
def test_a_refusal_resting_on_other_services_events_stands_once_the_wait_is_over(tally: TallyService,
                                                                               key: str | None) -> None:
    time_ = FakeTime()
    runner = CommandRunner(tally.engine, render_domain_error, wait_s=2.0, sleep=time_.sleep, clock=lambda: time_.now)
    work = Heard(tally, heard_after=None)
    with pytest.raises((RefusedResponse, NotHeardYet)) as refused:
        runner.run(work, institution="bank:ICBC", key=key, fingerprint=FP)
    assert 2.0 <= time_.now < 2.2, "decided again for the wait, then once more"
    assert work.runs == len(time_.slept) + 1
    if key is not None:
        assert refused.value.response.body["code"] == "PARTICIPANT_NOT_FOUND"
        runs = work.runs
        with pytest.raises(RefusedResponse):
            runner.run(work, institution="bank:ICBC", key=key, fingerprint=FP)
        assert work.runs == runs, "once stood, the refusal is the key's answer"
    assert tally.count(events) == 0


def test_any_other_refusal_is_the_answer_at_once(tally: TallyService) -> None:
    time_ = FakeTime()
    runner = CommandRunner(tally.engine, render_domain_error, wait_s=2.0, sleep=time_.sleep, clock=lambda: time_.now)
    work = AddCommand(tally, "P1", 5000)
    with pytest.raises(RefusedResponse):
        runner.run(work, institution="bank:ICBC", key="k-1", fingerprint=FP)
    assert work.runs == 1 and time_.slept == []


def test_beyond_the_commands_that_may_wait_at_once_a_refusal_resting_on_other_services_is_answered_at_once(
        tally: TallyService) -> None:
    time_ = FakeTime()
    other = Heard(tally, heard_after=None)
    seen: list[int] = []

    def sleep(seconds: float) -> None:
        """While the first command waits, a second one comes: no slot is left for it."""
        if not seen:
            with pytest.raises(NotHeardYet):
                runner.run(other, institution="bank:CCB", key=None, fingerprint=FP)
            seen.append(other.runs)
        time_.sleep(seconds)

    runner = CommandRunner(tally.engine, render_domain_error, wait_s=2.0, sleep=sleep, clock=lambda: time_.now,
                           max_waiting=1)
    first = Heard(tally, heard_after=2)
    assert runner.run(first, institution="bank:ICBC", key=None, fingerprint=FP).status_code == 201
    assert seen == [2], "the second was decided once more at once, then refused, with no wait"
    later = Heard(tally, heard_after=1)
    assert runner.run(later, institution="bank:ICBC", key=None, fingerprint=FP).status_code == 201, "the slot is free again"
