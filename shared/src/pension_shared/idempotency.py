"""Idempotency-Key handling (INTERFACES.md §1), in the same transaction as the command.

The key row is inserted first; a concurrent duplicate blocks on it and then finds the stored
response. If the command is refused, its transaction is rolled back whole (the key row with it)
and the refusal is stored under the key in a second transaction, unless a duplicate stored its
answer in between, which is then the answer: the same key with the same body always gets the
first stored response, and a refused command leaves nothing but that response. (A refusal is
rare; a command that succeeds needs no savepoint.) A different body under the same key is
refused with IDEMPOTENCY_KEY_REUSED.

A refusal that rests on what the service has heard of other services' events
(``DomainError.rests_on_others``) is not the answer at once: the command is decided again, from
scratch, every ``LOOK_EVERY_S`` for up to ``wait_s``, in case those events are still on their way
(a bank registering a person at the information platform and opening their fund account the same
second). Only then is the refusal stored under the key: a key must not keep a refusal that was
only the other service's lag."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pension_shared.db import insert_ignoring_duplicates
from pension_shared.errors import ConcurrencyConflict, DomainError, IdempotencyKeyReused
from pension_shared.schema import idempotency_keys


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


class RefusedResponse(Exception):
    """Carries a stored refusal back to the edge as the same problem document."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__(response.body.get("detail", ""))
        self.response = response


Work = Callable[[Connection], tuple[int, dict[str, Any]]]

UNHEARD_WAIT_S = 2.0
"""How long a command refused for what its service has not heard of yet is decided again, at most."""
LOOK_EVERY_S = 0.05
MAX_WAITING = 8
"""Commands of one process that may wait so at once: each holds a worker thread (an API process
has 40), so a flood of commands for participants never registered is refused at once beyond
these, and cannot take every thread from the others."""
ProblemRenderer = Callable[[DomainError], StoredResponse]


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = orjson.dumps(orjson.loads(body or b"null"), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class CommandRunner:
    """Runs one command in one transaction, retrying on a concurrency conflict, and
    remembering its response under an Idempotency-Key when one is given."""

    def __init__(self, engine: Engine, render_problem: ProblemRenderer, *, attempts: int = 8,
                 wait_s: float = UNHEARD_WAIT_S, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, max_waiting: int = MAX_WAITING) -> None:
        self._engine = engine
        self._render_problem = render_problem
        self._attempts = attempts
        self._wait_s, self._sleep, self._clock = wait_s, sleep, clock
        self._waiting = threading.BoundedSemaphore(max_waiting)

    def run(self, work: Work, *, institution: str, key: str | None, fingerprint: str) -> StoredResponse:
        conflicts, deadline, waiting = 0, None, False
        try:
            while True:
                final = deadline is not None and (not waiting or self._clock() >= deadline)
                try:
                    return self._run_once(work if final else _until_heard(work), institution=institution, key=key,
                                          fingerprint=fingerprint)
                except ConcurrencyConflict:
                    conflicts += 1
                    if conflicts == self._attempts:
                        raise
                except _NotHeardYet:
                    if deadline is None:
                        deadline, waiting = self._clock() + self._wait_s, self._waiting.acquire(blocking=False)
                    if waiting:
                        self._sleep(LOOK_EVERY_S)
        finally:
            if waiting:
                self._waiting.release()

    def _run_once(self, work: Work, *, institution: str, key: str | None, fingerprint: str) -> StoredResponse:
        if key is None:
            with self._engine.begin() as conn:
                status, body = work(conn)
                return StoredResponse(status, body)
        try:
            with self._engine.begin() as conn:
                # A concurrent duplicate waits here for the first to commit, then inserts nothing.
                if not _claimed(conn, institution, key, fingerprint):
                    return _replay(conn, institution, key, fingerprint)
                try:
                    status, body = work(conn)
                except ConcurrencyConflict:
                    raise
                except DomainError as refusal:
                    raise _Refused(refusal) from refusal  # leaves the block: everything rolled back
                response = StoredResponse(status, body)
                _remember(conn, institution, key, response)
        except _Refused as refused:
            response = self._render_problem(refused.refusal)
            with self._engine.begin() as conn:
                if not _claimed(conn, institution, key, fingerprint):
                    return _replay(conn, institution, key, fingerprint)
                _remember(conn, institution, key, response)
        if response.status_code >= 400:
            raise RefusedResponse(response)
        return response


class _NotHeardYet(Exception):
    """A refusal that rests on other services' events, before its wait is over: not a
    ``DomainError``, so it leaves the command's transaction rolled back (the key's claim with it)
    and is not stored under the key."""


def _until_heard(work: Work) -> Work:
    """``work``, its refusals that rest on other services' events raised as ``_NotHeardYet``."""
    def deciding(conn: Connection) -> tuple[int, dict[str, Any]]:
        try:
            return work(conn)
        except DomainError as refusal:
            if refusal.rests_on_others:
                raise _NotHeardYet() from refusal
            raise
    return deciding


class _Refused(Exception):
    def __init__(self, refusal: DomainError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def _claimed(conn: Connection, institution: str, key: str, fingerprint: str) -> bool:
    return conn.execute(
        _claim(conn.dialect.name), {"institution": institution, "key": key, "fingerprint": fingerprint}
    ).first() is not None


def _remember(conn: Connection, institution: str, key: str, response: StoredResponse) -> None:
    conn.execute(_REMEMBER, {"b_institution": institution, "b_key": key,
                             "new_status_code": response.status_code, "new_body": orjson.dumps(response.body)})


@functools.lru_cache(maxsize=None)
def _claim(dialect: str) -> Any:
    return insert_ignoring_duplicates(dialect, idempotency_keys).returning(idempotency_keys.c.key)


_REMEMBER = (
    idempotency_keys.update()
    .where(idempotency_keys.c.institution == sa.bindparam("b_institution"), idempotency_keys.c.key == sa.bindparam("b_key"))
    .values(status_code=sa.bindparam("new_status_code"), body=sa.bindparam("new_body"))
)
"""The response stored under its key (built once)."""


def _replay(conn: Connection, institution: str, key: str, fingerprint: str) -> StoredResponse:
    row = conn.execute(
        sa.select(idempotency_keys).where(idempotency_keys.c.institution == institution, idempotency_keys.c.key == key)
    ).one()
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used with a different request")
    response = StoredResponse(row.status_code, orjson.loads(row.body))
    if response.status_code >= 400:
        raise RefusedResponse(response)
    return response
