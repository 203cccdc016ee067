"""The set-based rebuild on PostgreSQL: the database computes each read model from the stored
events, in the caller's transaction, with the tables the migrations made, and takes the Python
path whenever its SQL would not read the ledger as the projections do."""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa

from pension_shared import bulk_rebuild
from pension_shared.bulk_rebuild import Few, Load, SetBased, _cuts, _largest_first, _Shared, rebuild_set_based
from pension_shared.envelope import Upcasters
from pension_shared.ledger import EventStore, NewEvent
from shared_support.tally import (
    ADDED, TallyProjection, TallyService, meta, receive, snapshot, stream_of, tally_received, tally_totals,
)

pytestmark = pytest.mark.postgres

_TOTALS = f"""
    SELECT e.subject, sum(d.amount), count(*), (array_agg(e.event_id ORDER BY e.position DESC))[1]
    FROM events e, json_to_record(CAST(e.data AS json)) AS d (amount bigint)
    WHERE e.type = '{ADDED}'
    GROUP BY e.subject
"""


_ADDITIONS = sa.Table("additions", sa.MetaData(), sa.Column("subject", sa.String), sa.Column("total", sa.BigInteger),
                      sa.Column("events", sa.Integer), sa.Column("last_event_id", sa.String),
                      sa.Column("position", sa.BigInteger))


def _recorder(table: sa.Table, ran: list, pause_s: float) -> Load:
    """A load of no rows that records the backend it ran on, after ``pause_s``."""
    return Load(table, lambda conn: ran.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
                or time.sleep(pause_s) or ())


class SetBasedTally(TallyProjection):
    """The tally projection with its fold also written in SQL; ``ran`` records each set-based run."""

    def __init__(self, *steps, pause_s: float = 0) -> None:  # noqa: ANN002
        super().__init__()
        self.ran: list[str] = []
        self.set_based = SetBased(reads=frozenset({ADDED}), steps=(
            Load(tally_totals, _TOTALS), *steps, _recorder(tally_totals, self.ran, pause_s)))


class ReceivedTally:
    """A second read model of the same events (what a consumer of the topic would count), so that
    two forms share the rebuild: one of them runs on the second connection."""

    name, tables = "tally_received", (tally_received,)

    def __init__(self, query: str = f"SELECT subject, total, events FROM ({_TOTALS}) AS totals (subject, total, events, last)",
                 *, pause_s: float = 0) -> None:
        self.ran: list[str] = []
        self.set_based = SetBased(reads=frozenset({ADDED}), steps=(
            Load(tally_received, query), _recorder(tally_received, self.ran, pause_s)))

    def apply(self, conn, event) -> None:  # noqa: ANN001
        if event.type == ADDED:
            receive(conn, event)


class Unfoldable:
    """A projection with no set-based form."""

    name, tables = "unfoldable", ()

    def apply(self, conn, event) -> None:  # noqa: ANN001
        pass


def _store(*projections, upcasters: Upcasters | None = None) -> EventStore:
    return EventStore(service="tally", topic="pension.tally", projections=projections, upcasters=upcasters)


def _history(tally: TallyService) -> None:
    for n in range(40):
        tally.add(f"P{(n * 7) % 9}", (n * 37) % 500 + 1, times=1 + n % 3)


def _damaged(tally: TallyService) -> list[tuple]:
    with tally.engine.begin() as conn:
        live = snapshot(conn, tally_totals)
        conn.execute(tally_totals.update().values(total=0))
        conn.execute(tally_totals.insert().values(subject="ghost", total=1, events=1, last_event_id="x"))
    return live


def _catalogue(conn) -> dict:  # noqa: ANN001
    return {
        "table": conn.exec_driver_sql("SELECT oid, relacl FROM pg_class WHERE oid = 'tally_totals'::regclass").one(),
        "indexes": sorted(conn.exec_driver_sql(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'tally_totals'::regclass").all()),
        "constraints": sorted(conn.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'tally_totals'::regclass").all()),
    }


def test_the_database_rebuilds_the_read_model_the_projections_keep(pg_tally: TallyService) -> None:
    _history(pg_tally)
    live = _damaged(pg_tally)
    projection = SetBasedTally()
    with pg_tally.engine.begin() as conn:
        replayed = _store(projection).rebuild_projections(conn)
    with pg_tally.engine.connect() as conn:
        assert snapshot(conn, tally_totals) == live
        assert replayed == conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 79
    assert len(projection.ran) == 1


def test_the_rebuilt_table_keeps_its_identity_grants_indexes_and_constraints(pg_tally: TallyService) -> None:
    _history(pg_tally)
    with pg_tally.engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_tally_totals_total ON tally_totals (total DESC) WHERE events > 1")
        conn.exec_driver_sql("ALTER TABLE tally_totals ADD CONSTRAINT uq_tally_last_event UNIQUE (last_event_id)")
        conn.exec_driver_sql("GRANT SELECT ON tally_totals TO PUBLIC")
        before = _catalogue(conn)
    with pg_tally.engine.begin() as conn:
        _store(SetBasedTally()).rebuild_projections(conn)
    with pg_tally.engine.connect() as conn:
        assert _catalogue(conn) == before
        assert len(before["indexes"]) == 3 and len(before["constraints"]) == 2


def test_a_rebuild_failing_on_the_second_connection_leaves_the_old_rows_and_indexes(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    with pg_tally.engine.connect() as conn:
        rows, catalogue = snapshot(conn, tally_totals), _catalogue(conn)

    with pytest.raises(RuntimeError, match="on the second connection"), pg_tally.engine.begin() as conn:

        def explode_beside(taken_by) -> list:  # noqa: ANN001
            # On the caller's connection it keeps that one busy, so the second takes the other.
            if taken_by is conn:
                time.sleep(1)
                return []
            raise RuntimeError("bug in a set-based form, on the second connection")

        _store(SetBasedTally(Load(tally_totals, explode_beside), Load(tally_totals, explode_beside))
               ).rebuild_projections(conn)
    with pg_tally.engine.connect() as conn:
        assert snapshot(conn, tally_totals) == rows and _catalogue(conn) == catalogue


def test_forms_share_the_rebuild_loads_taken_by_whichever_connection_is_free_in_the_same_snapshot(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    live = _damaged(pg_tally)
    with pg_tally.engine.begin() as conn:
        conn.execute(tally_received.insert().values(subject="stale", total=1, events=1))
    # Each recorder keeps the connection that took it busy for a while: the other takes the next.
    totals, received = SetBasedTally(pause_s=0.5), ReceivedTally(pause_s=0.5)
    with pg_tally.engine.begin() as conn:
        assert rebuild_set_based(conn, [totals, received], Upcasters()) == 79
        assert snapshot(conn, tally_totals) == live
        assert snapshot(conn, tally_received) == [row[:3] for row in live]
        here = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    assert len(totals.ran) == len(received.ran) == 1
    assert here in totals.ran + received.ran and len(set(totals.ran + received.ran)) == 2


def _blocks(conn) -> int:  # noqa: ANN001
    return conn.exec_driver_sql("SELECT pg_relation_size('events') / 8192").scalar_one()


def test_a_load_by_event_is_taken_in_parts_of_shrinking_shares_each_reading_only_its_own_blocks(pg_tally) -> None:  # noqa: ANN001
    by_event = f"""
        SELECT e.subject, d.amount, 1, e.event_id, e.position
        FROM events e, json_to_record(CAST(e.data AS json)) AS d (amount bigint)
        WHERE e.type = '{ADDED}'
    """
    whole = Load(_ADDITIONS, by_event, per_event=True)
    _history(pg_tally)
    with pg_tally.engine.connect() as conn:
        assert _blocks(conn) < 20 and _cuts(conn) == [] and whole.parts(_cuts(conn)) == (whole,)
    while True:  # until the events fill as many blocks as the shares add up to (20)
        _history(pg_tally)
        with pg_tally.engine.connect() as conn:
            if _blocks(conn) >= 20:
                break
    with pg_tally.engine.connect() as conn:
        blocks, cuts = _blocks(conn), _cuts(conn)
        every = sorted(conn.exec_driver_sql(by_event).all())
        parts = whole.parts(cuts)
        taken = [conn.exec_driver_sql(part.rows).all() for part in parts]
        plans = ["\n".join(conn.exec_driver_sql(f"EXPLAIN {part.rows}").scalars()) for part in parts]
    # Shares of 4, 4, 3, 3, 2, 2, 1 and 1 twentieths of the blocks, in that order.
    assert cuts == [(blocks * k // 20, 0) for k in (4, 8, 11, 14, 16, 18, 19)]
    assert cuts == sorted(set(cuts)) and cuts[0] > (0, 0) and cuts[-1] < (blocks, 0)
    # A part per range of blocks, the first and the last open-ended, none empty: together every row, once.
    assert len(parts) == 8 and all(taken) and sorted(row for part in taken for row in part) == every
    # The range is the condition of the scan of the events, under json_to_record: the events
    # outside it are not read.
    assert all(re.search(r"Tid Range Scan on events\b.*\n\s+TID Cond: .*ctid", plan) for plan in plans), plans
    assert Load(_ADDITIONS, by_event).parts(cuts) == (Load(_ADDITIONS, by_event),)
    with pytest.raises(ValueError, match="must be a query naming the events once"):
        Load(_ADDITIONS, lambda conn: (), per_event=True)
    with pytest.raises(ValueError, match="must be a query naming the events once"):
        Load(_ADDITIONS, by_event + " AND e.position > (SELECT min(position) FROM events)", per_event=True)


def test_a_load_by_event_is_taken_in_parts_each_costing_its_share() -> None:
    other = "cn.pension.tally.Other.v1"
    by_event = Load(_ADDITIONS, f"SELECT e.subject, 0, 1, e.event_id, e.position FROM events e WHERE e.type = '{ADDED}'",
                    per_event=True)
    by_other = Load(_ADDITIONS, f"SELECT e.subject, 0, 1, e.event_id, e.position FROM events e WHERE e.type = '{other}'",
                    per_event=True)
    whole = Load(_ADDITIONS, f"SELECT e.subject, 0, count(*), '', max(e.position) FROM events e WHERE e.type = '{other}' GROUP BY 1")
    form = SetBased(reads=frozenset({ADDED, other}), steps=(by_event, by_other, whole))

    def taken(added: int, others: int, cuts: list[tuple[int, int]], loads: tuple[Load, ...] = (whole, by_event)) -> list[Load]:
        return _largest_first([(load, form) for load in loads], {ADDED: added, other: others}, cuts)

    # A scan of the ledger costs as much as reading a third of it (here 333), and each part of a
    # load by event its share of the scan and of the reading: (333 + 900) / 2 against 333 + 100.
    assert taken(900, 100, [(10, 0)]) == [*by_event.parts([(10, 0)]), whole]
    # (333 + 100) / 3 against 333 + 900.
    assert taken(100, 900, [(10, 0), (20, 0)]) == [whole, *by_event.parts([(10, 0), (20, 0)])]
    # In eight parts, each costs its share of its load, from 4/20 down to 1/20: of (666 + 1900),
    # 513, 384, 256 and 128; of (666 + 100), 153, 114, 76 and 38. A load read whole costs at least
    # a scan, more than any part of eight.
    eight = [(k, 0) for k in range(1, 8)]
    added, others = by_event.parts(eight), by_other.parts(eight)
    assert len(added) == len(others) == 8
    assert taken(1900, 100, eight, (by_other, by_event)) == [*added[:6], *others[:2], *added[6:], *others[2:]]
    assert taken(1900, 100, eight, (by_event, whole)) == [whole, *added]
    # Too few events to cut the ledger: taken whole, 333 + 900 against 333 + 100.
    assert taken(900, 100, []) == [by_event, whole]
    # Without statistics the estimates are all but equal, and the loads are taken in the order given.
    assert _largest_first([(whole, form), (by_event, form)], {}, [(10, 0)]) == [whole, *by_event.parts([(10, 0)])]


def test_the_second_connection_takes_the_most_costly_load_left_and_the_caller_the_least() -> None:
    loads = [Load(_ADDITIONS, f"SELECT e.subject, {n}, 1, e.event_id, e.position FROM events e") for n in range(5)]
    shared = _Shared(loads)  # from the most costly down
    assert shared.take() is loads[0] and shared.take(least=True) is loads[4] and shared.take(least=True) is loads[3]
    assert shared.take() is loads[1] and shared.take(least=True) is loads[2]
    assert shared.take() is None and shared.take(least=True) is None and not shared


def test_the_caller_writes_the_rows_of_the_loads_the_other_connection_finished_between_two_of_its_own(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    # The caller is held by a form of its own first; the other connection meanwhile takes the load
    # of received rows (each carrying the backend that made it) and starts on the checks. The
    # caller takes the checks left, each noting how many received rows it sees (the other
    # connection cannot read the locked table).
    checks: list[tuple[int, int | None]] = []
    here: list[int] = []

    def check(conn) -> tuple:  # noqa: ANN001
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        checks.append((pid, conn.exec_driver_sql("SELECT count(*) FROM tally_received").scalar() if pid in here else None))
        time.sleep(0.1)
        return ()

    received = Load(tally_received, f"SELECT subject, pg_backend_pid(), count(*) FROM events WHERE type = '{ADDED}' GROUP BY subject")
    held = _Holding(SetBased(reads=frozenset({ADDED}), steps=("SELECT pg_sleep(1.0)",)))
    loads = _Holding(SetBased(reads=frozenset({ADDED}), steps=(received, *(Load(tally_totals, check) for _ in range(16)))),
                     tables=(tally_received, tally_totals))
    with pg_tally.engine.begin() as conn:
        here.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        assert rebuild_set_based(conn, [held, loads], Upcasters()) == 79
        made_by = {pid for pid, in conn.exec_driver_sql("SELECT DISTINCT total FROM tally_received")}
    there = {pid for pid, _ in checks} - set(here)
    assert len(there) == 1 and made_by == there
    on_caller = [seen for pid, seen in checks if pid in here]
    # Without the writes between loads the caller would see none of them until every load was done.
    assert on_caller and all(seen == 9 for seen in on_caller), checks


def _few_received(uses: tuple = (tally_totals,)) -> "_Holding":
    """Few statements of their own, and one with a WITH list (which goes on after the gathered
    events'), the second reading all the events it is given. Without ``uses``, they are a form
    the caller runs at once, while the other connection may still be gathering."""
    return _Holding(SetBased(reads=frozenset({ADDED}), uses=uses, steps=(
        Few(f"INSERT INTO tally_received SELECT subject, count(*), 0 FROM events WHERE type = '{ADDED}' GROUP BY subject"),
        Few("WITH n AS (SELECT subject, count(*) AS c FROM events GROUP BY subject) "
            "UPDATE tally_received SET events = n.c FROM n WHERE tally_received.subject = n.subject"),
    )), tables=(tally_received,))


def _with_noted(tally: TallyService) -> int:
    """The history, and events of a type no statement names; how many events the ledger holds."""
    _history(tally)
    with tally.engine.begin() as conn:
        stream = tally.store.load(conn, stream_of("P2"))
        tally.store.append(conn, stream.stream_id, stream.version, [NewEvent("Noted", {}, "P2")] * 3, meta())
        return conn.exec_driver_sql("SELECT count(*) FROM events").scalar()


@pytest.mark.parametrize("uses", [(tally_totals,), ()], ids=["after the loads", "before the loads"])
def test_few_statements_read_only_the_events_of_the_types_they_name_gathered_once_by_the_caller_first(
    pg_tally, monkeypatch, uses,  # noqa: ANN001
) -> None:
    every = _with_noted(pg_tally)
    copied_out: list[tuple[int, str]] = []
    copy_out = bulk_rebuild._copy_out

    def recorded(conn, query):  # noqa: ANN001, ANN202
        copied_out.append((id(conn.connection.dbapi_connection), query))
        return copy_out(conn, query)

    monkeypatch.setattr(bulk_rebuild, "_copy_out", recorded)
    with pg_tally.engine.begin() as conn:
        caller = id(conn.connection.dbapi_connection)
        made: list[str] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *args: made.append(args[2]))
        assert rebuild_set_based(conn, [SetBasedTally(), _few_received(uses)], Upcasters()) == every == 82
        rows = conn.exec_driver_sql("SELECT subject, total, events FROM tally_received ORDER BY subject").all()
        totals = conn.exec_driver_sql("SELECT subject, events FROM tally_totals ORDER BY subject").all()
        left = conn.exec_driver_sql("SELECT to_regclass('pg_temp.rebuild_few_events')").scalar()
    # One scan for the events of the named types, the caller's first statement after emptying
    # the tables: the Noted events are not among them, though the second Few statement reads all
    # it is given. The other connection only loads (its rows come back by COPY), and the table is
    # gone once the rebuild is done.
    gathered = [n for n, statement in enumerate(made) if "TEMPORARY" in statement]
    assert len(gathered) == 1 and ADDED in made[gathered[0]] and "Noted" not in made[gathered[0]]
    assert not any("INSERT" in statement or "COPY" in statement for statement in made[:gathered[0]])
    assert all(on != caller and "rebuild_few_events" not in query for on, query in copied_out)
    assert left is None
    assert rows == [(subject, events, events) for subject, events in totals] and sum(n for _, n in totals) == 79


def test_a_form_of_few_statements_is_run_by_the_caller_while_the_other_connection_takes_the_loads(pg_tally) -> None:  # noqa: ANN001
    _with_noted(pg_tally)
    # The totals' recorder holds whichever connection takes it for a second: the caller gathers
    # and runs the form of Few statements before it takes any load, without waiting for either.
    totals = SetBasedTally(pause_s=1.0)
    with pg_tally.engine.begin() as conn:
        done: list[float] = []
        sa.event.listen(conn, "after_cursor_execute",
                        lambda *args: done.append(time.monotonic()) if "FROM pg_temp.rebuild_few_events)" in args[2] else None)
        started = time.monotonic()
        rebuild_set_based(conn, [totals, _few_received(uses=())], Upcasters())
        finished = time.monotonic()
    assert len(totals.ran) == 1
    assert len(done) == 2 and done[-1] - started < 0.9 < finished - started


def test_without_a_load_to_share_the_caller_gathers_the_events_of_few_statements_itself(pg_tally) -> None:  # noqa: ANN001
    every = _with_noted(pg_tally)
    # A fold as one statement of its own (not a load): nothing for a second connection to take.
    totals_in_one_statement = TallyProjection()
    totals_in_one_statement.set_based = SetBased(reads=frozenset({ADDED}), steps=(
        f"INSERT INTO tally_totals (subject, total, events, last_event_id) {_TOTALS}",))
    with pg_tally.engine.begin() as conn:
        gathered: list[str] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *args: gathered.append(args[2]) if "TEMPORARY" in args[2] else None)
        assert rebuild_set_based(conn, [totals_in_one_statement, _few_received()], Upcasters()) == every == 82
        rows = conn.exec_driver_sql("SELECT subject, total, events FROM tally_received ORDER BY subject").all()
        totals = conn.exec_driver_sql("SELECT subject, events FROM tally_totals ORDER BY subject").all()
    assert len(gathered) == 1 and ADDED in gathered[0] and "Noted" not in gathered[0]
    assert rows == [(subject, events, events) for subject, events in totals] and sum(n for _, n in totals) == 79


class _Holding:
    """A projection given only by its set-based form (its ``apply`` is never called here)."""

    name = "holding"

    def __init__(self, form: SetBased, tables: tuple = ()) -> None:
        self.set_based, self.tables = form, tables

    def apply(self, conn, event) -> None:  # noqa: ANN001
        raise AssertionError("the set-based path folds the events")


class TalliedAndReceived(TallyProjection):
    """Two read models in one projection: the totals loaded from the events, and what was received
    taken from the totals once they are loaded (an ``after`` step)."""

    tables = (tally_totals, tally_received)

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[int] = []
        # The recorder keeps the connection that takes it busy: the totals go to the other.
        self.set_based = SetBased(reads=frozenset({ADDED}),
                                  steps=(_recorder(tally_totals, self.ran, 0.5), Load(tally_totals, _TOTALS)),
                                  after=("INSERT INTO tally_received SELECT subject, total, events FROM tally_totals",))

    def apply(self, conn, event) -> None:  # noqa: ANN001
        super().apply(conn, event)
        if event.type == ADDED:
            receive(conn, event)


def test_after_steps_read_the_rows_their_forms_loads_made_wherever_those_ran(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    with pg_tally.engine.begin() as conn:
        conn.execute(tally_received.insert().values(subject="stale", total=1, events=1))
    with pg_tally.engine.connect() as conn:
        live = snapshot(conn, tally_totals)
    projection = TalliedAndReceived()
    with pg_tally.engine.begin() as conn:
        assert rebuild_set_based(conn, [projection], Upcasters()) == 79
        assert snapshot(conn, tally_totals) == live
        assert snapshot(conn, tally_received) == [row[:3] for row in live]
    assert len(projection.ran) == 1
    with pytest.raises(ValueError, match="does not declare"):
        SetBased(reads=frozenset({ADDED}), steps=(), after=("SELECT 1 FROM events WHERE type = 'cn.pension.tally.Other.v1'",))


def test_a_statement_failing_on_the_callers_connection_fails_the_rebuild_and_leaves_the_old_rows(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    with pg_tally.engine.connect() as conn:
        rows = snapshot(conn, tally_totals)
    broken = ReceivedTally()  # a statement (not a load) runs on the caller's connection
    broken.set_based = SetBased(reads=frozenset({ADDED}), steps=("INSERT INTO tally_received SELECT 'P0', 1, 1 / 0",))
    with pytest.raises(sa.exc.DataError, match="division by zero"), pg_tally.engine.begin() as conn:
        rebuild_set_based(conn, [SetBasedTally(), broken], Upcasters())
    with pg_tally.engine.connect() as conn:
        assert snapshot(conn, tally_totals) == rows


def test_a_duplicate_key_is_refused_as_the_python_path_refuses_it(pg_tally: TallyService) -> None:
    _history(pg_tally)
    twice = Load(tally_totals, "SELECT 'P0', 1, 1, 'e'")
    with pytest.raises(sa.exc.IntegrityError), pg_tally.engine.begin() as conn:
        _store(SetBasedTally(twice)).rebuild_projections(conn)


def test_readers_and_writers_wait_for_the_rebuild_then_see_all_of_it(pg_tally: TallyService) -> None:
    _history(pg_tally)
    live = _damaged(pg_tally)
    reader = pg_tally.engine.connect()
    appended = threading.Event()
    try:
        with pg_tally.engine.begin() as conn:
            _store(SetBasedTally()).rebuild_projections(conn)
            # A reader waits rather than seeing an empty or half-built table.
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"), reader.begin():
                reader.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
                reader.execute(sa.select(tally_totals))
            # A command appending meanwhile waits at its projection write.
            writer = threading.Thread(target=lambda: (pg_tally.add("P1", 1000), appended.set()))
            writer.start()
            assert not appended.wait(0.5)
        writer.join(timeout=10)
        assert appended.is_set()
        with reader.begin():
            after = {row.subject: (row.total, row.events) for row in reader.execute(sa.select(tally_totals))}
        expected = {subject: (total, events) for subject, total, events, _ in live}
        expected["P1"] = (expected["P1"][0] + 1000, expected["P1"][1] + 1)
        assert after == expected
    finally:
        reader.close()


def test_a_projection_without_a_set_based_form_sends_the_whole_rebuild_down_the_python_path(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    live = _damaged(pg_tally)
    projection = SetBasedTally()
    with pg_tally.engine.begin() as conn:
        _store(projection, Unfoldable()).rebuild_projections(conn)
    with pg_tally.engine.connect() as conn:
        assert snapshot(conn, tally_totals) == live
    assert projection.ran == []


def test_an_upcaster_from_a_type_a_form_reads_sends_the_rebuild_down_the_python_path(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    upcasters = Upcasters()
    upcasters.register(ADDED, "cn.pension.tally.Added.v2", lambda data: data)
    with pg_tally.engine.begin() as conn:
        assert rebuild_set_based(conn, [SetBasedTally()], upcasters) is None
        assert rebuild_set_based(conn, [SetBasedTally()], Upcasters()) == 79


def test_a_stored_version_the_form_does_not_read_sends_the_rebuild_down_the_python_path(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    with pg_tally.engine.begin() as conn:
        stream = pg_tally.store.load(conn, stream_of("P2"))
        pg_tally.store.append(conn, stream.stream_id, stream.version, [NewEvent("Added", {"amount": 5}, "P2", 2)], meta())
    _damaged(pg_tally)
    with pg_tally.engine.connect() as conn:
        damaged = snapshot(conn, tally_totals)
    with pg_tally.engine.begin() as conn:
        assert rebuild_set_based(conn, [SetBasedTally(), ReceivedTally()], Upcasters()) is None
        assert snapshot(conn, tally_totals) == damaged, "what the forms did is undone"


def test_a_form_reading_a_table_no_earlier_projection_rebuilds_takes_the_python_path(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    reader = SetBasedTally()
    reader.set_based = SetBased(reads=frozenset({ADDED}), steps=(Load(tally_totals, _TOTALS),), uses=(tally_totals,))
    with pg_tally.engine.begin() as conn:
        assert rebuild_set_based(conn, [reader], Upcasters()) is None


def test_sqlite_always_takes_the_python_path(sqlite_tally: TallyService) -> None:
    _history(sqlite_tally)
    live = _damaged(sqlite_tally)
    projection = SetBasedTally()
    with sqlite_tally.engine.begin() as conn:
        assert _store(projection).rebuild_projections(conn) == 79
    with sqlite_tally.engine.connect() as conn:
        assert snapshot(conn, tally_totals) == live
    assert projection.ran == []


def test_a_form_whose_sql_reads_an_event_type_it_does_not_declare_is_refused() -> None:
    with pytest.raises(ValueError, match="cn.pension.tally.Removed.v1"):
        SetBased(reads=frozenset({ADDED}), steps=("SELECT 1 FROM events WHERE type = 'cn.pension.tally.Removed.v1'",))
