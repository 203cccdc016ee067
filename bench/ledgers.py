"""Ledgers of a million events, then the two whole-ledger operations timed on them: rebuilding
every projection from zero (``EventStore.rebuild_projections``) and verifying every hash chain
(``verify_ledger``).

The events are the service's own: what the load phases recorded through the real domain is the
template, and it is cloned until the ledger is big enough. Each clone renames every identifier
(participant, fund account, contribution, voucher ids, digests, uuids) consistently, keeping its
length, so clones are new participants with the same history; each cloned stream gets its own
hash chain through the real hash function, and its stream head. Rows are written with COPY."""

from __future__ import annotations

import math
import random
import re
import statistics
import string
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import sqlalchemy as sa

from pension_shared.envelope import chain_hash_of_stored
from pension_shared.ledger import EventStore
from pension_shared.runtime import ServiceDefinition
from pension_shared.verification import VerificationReport, verify_ledger

_IDENTIFIER = re.compile(
    r"\b(?:[A-Z]{1,3}[0-9A-F]{12,}|[0-9a-f]{32,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
)
_COLUMNS = ("position", "event_id", "stream_id", "sequence", "type", "source", "subject", "time", "data",
            "correlation_id", "causation_id", "prevhash", "hash")


_KEPT = 5
"""The characters an identifier of the services' own keeps when cloned: its letters and the first
digits, which in a voucher number are its year (``V2025...``)."""
_SPREAD = 0x9E3779B97F4A7C15F39CC0605CEDC8341082276BF3A27251F86C6A11D0C18E95
"""Odd, and 64 hex digits long: distinct clones (fewer than 2**32) shift an identifier's digits by
distinct amounts (mod 16 to their count), which differ in their leading digits as much as in their
last."""


def renamer(clone: int) -> Callable[[str], str]:
    """A bijection on identifiers for one clone, case and length kept.

    The services' identifiers (a letter or two, then hex digits from a uuid4 or a MAC) keep their
    first ``_KEPT`` characters; the digits after those, read as one number, are shifted by a
    per-clone amount. The ids of the clones of one participant then differ from their sixth
    character on, as the ids of different participants do, not only in their last eight digits.
    That matters to every sort of ids (an index build, say): PostgreSQL sorts text by its first
    eight bytes first (abbreviated keys), and gives that up for a sort whose first eight bytes take
    far fewer values than its keys, as they did when clones shared all but their last digits
    (7,267 values for 930,176 contribution ids), and as the uuid4 ids of a real ledger never do.
    Other hex (digests, uuids) has its last 8 digits shifted, as before."""
    spread, cache = clone * _SPREAD, {}

    def one(match: re.Match) -> str:
        token = match.group(0)
        renamed = cache.get(token)
        if renamed is None:
            own = token[0] in string.ascii_uppercase
            kept = _KEPT if own else len(token) - 8
            digits = len(token) - kept
            value = (int(token[kept:], 16) + spread) % (16 ** digits)
            renamed = cache[token] = token[:kept] + (f"{value:0{digits}X}" if own else f"{value:0{digits}x}")
        return renamed

    return lambda text: _IDENTIFIER.sub(one, text) if text else text


@dataclass(frozen=True)
class Runs:
    """One operation run a few times on one ledger: the events each run took (the same every
    time) and each run's seconds."""

    events: int
    seconds: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def per_s(self) -> float:
        """Events per second of the median run."""
        return self.events / self.median_s

    @property
    def span(self) -> tuple[float, float]:
        """Events per second of the slowest run and of the fastest."""
        return self.events / max(self.seconds), self.events / min(self.seconds)


@dataclass
class LedgerResult:
    """One service's ledger, grown from what the load recorded, then rebuilt and verified a few
    times over."""

    service: str
    events: int
    template_events: int
    generate_s: float
    rebuild: Runs
    verify: Runs
    intact: bool


def amplify(engine: sa.Engine, target: int) -> tuple[int, int]:
    """Clone the ledger's events until it holds at least ``target``; returns (template, total)."""
    with engine.connect() as conn:
        template = conn.exec_driver_sql(
            "SELECT stream_id, sequence, type, source, subject, time, data, correlation_id, causation_id "
            "FROM events ORDER BY position"
        ).all()
        position = conn.exec_driver_sql("SELECT coalesce(max(position), 0) FROM events").scalar_one()
    base = len(template)
    clonable = [row for row in template if renamer(1)(row[0]) != row[0]]
    if base >= target or not clonable:
        return base, base
    clones = math.ceil((target - base) / len(clonable))
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:
            heads: list[tuple[str, int, str]] = []
            with cursor.copy(f"COPY events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                first = random.randrange(1, 2**20)  # clone numbers no earlier amplification used
                for clone in range(first, first + clones):
                    rename = renamer(clone)
                    chains: dict[str, tuple[int, str]] = {}
                    for stream_id, sequence, type_, source, subject, time_, data, correlation, causation in clonable:
                        stream_id, subject, data = rename(stream_id), rename(subject), rename(data)
                        position += 1
                        event_id = rename_event_id(clone, position)
                        prevhash = chains[stream_id][1] if sequence > 1 else None
                        digest = chain_hash_of_stored(
                            id=event_id, source=source, type=type_, time=time_, subject=subject, streamid=stream_id,
                            sequence=sequence, data_json=data.encode(), prevhash=prevhash, correlationid=correlation,
                            causationid=causation,
                        )
                        chains[stream_id] = (sequence, digest)
                        copy.write_row((position, event_id, stream_id, sequence, type_, source, subject, time_, data,
                                        correlation, causation, prevhash, digest))
                    heads.extend((stream_id, version, digest) for stream_id, (version, digest) in chains.items())
            with cursor.copy("COPY stream_heads (stream_id, version, head_hash) FROM STDIN") as copy:
                for head in heads:
                    copy.write_row(head)
            cursor.execute("SELECT setval(pg_get_serial_sequence('events', 'position'), %s)", (position,))
    # Left as autovacuum leaves a ledger written over months (its rows known visible to all, its
    # statistics taken), not as a bulk load just made: the first reader would otherwise set every
    # row's hint bits, writing the whole table again, within the rebuild that is measured.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) events")
        conn.exec_driver_sql("VACUUM (ANALYZE) stream_heads")
    return base, base + clones * len(clonable)


def settle(engine: sa.Engine) -> None:
    """Every table of the database vacuumed and analysed, then a checkpoint: what autovacuum would
    do next (to the tables a rebuild just filled, to those the load wrote) done now, not by a
    worker beside the next measure, whichever database that is on. Watched on the bench's
    ledgers, autovacuum took up a service's rebuilt tables seconds later, during the next
    service's rebuild or verification."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    checkpoint(engine)


def checkpoint(engine: sa.Engine) -> None:
    """What was written before is flushed now, not while the next measure runs: each measures
    one operation alone, as in production, where each service's database is its own, not written
    back by the same server as the others'."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")


def rename_event_id(clone: int, position: int) -> str:
    return f"{clone:08x}-0000-4000-8000-{position:012x}"


REPEATS = 3
"""Runs of each operation on each ledger: one run on a shared machine is as likely as not to land
either side of a target it is near (the rebuild of a tax ledger of 1M events took 4.9 to 6.3 s in
eleven runs of the same code on the same ledger, one after another), so the figure judged is the
median run's, printed with the slowest and the fastest."""


def measure(service: str, definition: ServiceDefinition, database_url: str, *, generated: tuple[int, int, float],
            log: Callable[[str], None], repeats: int) -> LedgerResult:
    """The ledger rebuilt ``repeats`` times, each after a checkpoint and settled after (a rebuild
    from zero gives the same rows each time), then verified ``repeats`` times."""
    template, total, generated_s = generated
    rebuilt: list[float] = []
    replays: list[int] = []
    verified: list[float] = []
    reports: list[VerificationReport] = []
    with _engine(database_url) as engine:
        store = EventStore(service=definition.name, topic=definition.topic, projections=definition.projections(),
                           upcasters=definition.upcasters())
        for run in range(1, repeats + 1):
            checkpoint(engine)
            t0 = time.perf_counter()
            with engine.begin() as conn:
                replays.append(store.rebuild_projections(conn))
            rebuilt.append(time.perf_counter() - t0)
            log(f"  {service}: rebuilt projections from {replays[-1]:,} events in {rebuilt[-1]:.1f} s "
                f"(run {run} of {repeats})")
            settle(engine)
        for run in range(1, repeats + 1):
            t0 = time.perf_counter()
            with engine.connect() as conn:
                reports.append(verify_ledger(conn))
            verified.append(time.perf_counter() - t0)
            report = reports[-1]
            log(f"  {service}: verified {report.events:,} events in {report.streams:,} streams in {verified[-1]:.1f} s"
                f" ({'intact' if report.intact else report.first_break}; run {run} of {repeats})")
    counted = [report.events for report in reports]
    if len(set(replays)) != 1 or len(set(counted)) != 1:
        raise RuntimeError(f"{service}: the runs took different numbers of events: rebuilt {replays}, verified {counted}")
    return LedgerResult(service, total, template, generated_s, Runs(replays[0], tuple(rebuilt)),
                        Runs(counted[0], tuple(verified)), all(report.intact for report in reports))


def _amplified(args: tuple[str, str, int]) -> tuple[str, int, int, float]:
    service, database_url, target = args
    with _engine(database_url) as engine:
        t0 = time.perf_counter()
        template, total = amplify(engine, target)
        return service, template, total, time.perf_counter() - t0


@contextmanager
def _engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine for one step of the bench, its connections closed after."""
    engine = sa.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def measure_all(database_urls: dict[str, str], *, target: int, log: Callable[[str], None],
                repeats: int) -> list[LedgerResult]:
    """Every service's ledger grown to ``target`` events, two services at a time (one process
    per core: the generation is not what is measured), every database settled, then each rebuilt
    and verified alone, ``repeats`` times each."""
    from concurrent.futures import ProcessPoolExecutor

    from bench.definitions import DEFINITIONS

    with ProcessPoolExecutor(max_workers=2) as pool:
        generated = {}
        for service, template, total, seconds in pool.map(
            _amplified, [(service, database_urls[service], target) for service in DEFINITIONS]
        ):
            log(f"  {service}: {total:,} events ({template:,} recorded by the load, cloned) in {seconds:.1f} s")
            generated[service] = (template, total, seconds)
    for service in DEFINITIONS:  # what the load left, before any is measured
        with _engine(database_urls[service]) as engine:
            settle(engine)
    return [measure(service, DEFINITIONS[service], database_urls[service], generated=generated[service], log=log,
                    repeats=repeats) for service in DEFINITIONS]
