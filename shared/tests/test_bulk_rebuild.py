"""The set-based rebuild on PostgreSQL: the database computes each read model from the stored
events, in the caller's transaction, with the tables the migrations made, and takes the Python
path whenever its SQL would not read the ledger as the projections do."""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa

from pension_shared.bulk_rebuild import Load, SetBased, _largest_first, rebuild_set_based
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


def test_a_load_by_event_is_taken_in_two_halves_each_parsing_only_its_own_events(pg_tally) -> None:  # noqa: ANN001
    _history(pg_tally)
    by_event = f"""
        SELECT e.subject, d.amount, 1, e.event_id, e.position
        FROM events e, json_to_record(CAST(e.data AS json)) AS d (amount bigint)
        WHERE e.type = '{ADDED}'
    """
    table = sa.Table("additions", sa.MetaData(), sa.Column("subject", sa.String), sa.Column("total", sa.BigInteger),
                     sa.Column("events", sa.Integer), sa.Column("last_event_id", sa.String), sa.Column("position", sa.BigInteger))
    whole = Load(table, by_event, per_event="position")
    with pg_tally.engine.connect() as conn:
        every = sorted(conn.exec_driver_sql(by_event).all())
        halves = [conn.exec_driver_sql(half.rows).all() for half in whole.halves()]
        plans = ["\n".join(conn.exec_driver_sql(f"EXPLAIN {half.rows}").scalars()) for half in whole.halves()]
    assert len(every) == 79 and all(halves) and sorted(halves[0] + halves[1]) == every
    assert {position % 2 for _, _, _, _, position in halves[0]} == {0}
    # The parity is a condition of the scan of the events, under json_to_record: not after it.
    assert all(re.search(r"Scan on events e .*\n\s+Filter: .*mod\(\"position\"", plan) for plan in plans), plans
    with pytest.raises(ValueError, match="divided by 'at'"):
        Load(table, by_event, per_event="at")


def test_a_load_by_event_is_halved_only_when_each_half_parses_more_than_a_scan_of_the_ledger() -> None:
    table = sa.Table("additions", sa.MetaData(), sa.Column("subject", sa.String), sa.Column("position", sa.BigInteger))
    by_event = Load(table, f"SELECT e.subject, e.position FROM events e WHERE e.type = '{ADDED}'", per_event="position")
    whole = Load(table, f"SELECT e.subject, max(e.position) FROM events e WHERE e.type = '{ADDED}' GROUP BY 1")
    form = SetBased(reads=frozenset({ADDED}), steps=(by_event, whole))
    other = "cn.pension.tally.Other.v1"

    def taken(added: int, others: int) -> list[Load]:
        return _largest_first([(by_event, form), (whole, form)], {ADDED: added, other: others})

    # Half of the ledger read: halved (each half parses a quarter, more than a scan's tenth), and
    # the halves, costing less than the whole load over the same events, come after it.
    assert taken(500, 500) == [whole, *by_event.halves()]
    # A fifth or less: each half would parse no more than a scan costs, so it is taken whole.
    assert taken(200, 800) == [by_event, whole]
    assert taken(10, 990) == [by_event, whole]
    # Without statistics nothing is known to be small: halved.
    assert _largest_first([(by_event, form)], {}) == list(by_event.halves())


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
