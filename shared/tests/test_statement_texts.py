"""Statements binding a list of any length keep a few texts (``padded``: one per power of two),
so psycopg prepares them and PostgreSQL plans each once per connection, where every length was a
text parsed and planned on each run, pushing the fixed statements out of the prepared ones."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.db import bound_list, create_engine, in_list, padded
from shared_support.tally import TallyService, stream_of

KIND = "Total.v1"


def _event_reads(engine: sa.Engine) -> list[str]:
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if statement.lstrip().startswith(("SELECT", "WITH")) and "events.event_id" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen


def test_padded_repeats_the_last_value_up_to_the_next_power_of_two() -> None:
    assert padded([]) == []
    assert padded(["a"]) == ["a"]
    assert padded(["a", "b", "c"]) == ["a", "b", "c", "c"]
    assert padded(list(range(5))) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert padded(list(range(8))) == list(range(8))
    assert padded([("s", "k")] * 3) == [("s", "k")] * 4
    assert len(padded(list(range(1025)))) == 2048


@pytest.mark.parametrize("kind", [None, KIND])
def test_loads_of_five_to_eight_streams_are_one_text_and_give_each_stream(tally: TallyService, kind: str | None) -> None:
    for number in range(1, 9):
        tally.add(f"P{number}", number, times=number)
    reads = _event_reads(tally.engine)
    with tally.engine.connect() as conn:
        for size in (5, 6, 7, 8):
            wanted = [stream_of(f"P{number}") for number in range(size, 0, -1)]
            snapshots = {stream_id: kind for stream_id in wanted} if kind else None
            loaded = tally.store.load_many(conn, wanted, snapshots=snapshots)
            assert list(loaded) == wanted
            assert {s: (loaded[s].version, [e.data["amount"] for e in loaded[s].events]) for s in wanted} == {
                stream_of(f"P{n}"): (n, [n] * n) for n in range(1, size + 1)}
    assert len(reads) == 4
    assert len(set(reads)) == 1


@pytest.mark.postgres
def test_loads_of_every_batch_size_run_as_four_prepared_statements(pg_tally: TallyService) -> None:
    """Loads of 1 to 8 streams, six times each, on one connection: PostgreSQL holds four
    prepared texts that read events (1, 2, 4 and 8 streams), not eight."""
    for number in range(1, 9):
        pg_tally.add(f"P{number}", number)
    with pg_tally.engine.connect() as conn:
        for _ in range(6):
            for size in range(1, 9):
                loaded = pg_tally.store.load_many(conn, [stream_of(f"P{n}") for n in range(1, size + 1)])
                assert [stream.version for stream in loaded.values()] == [1] * size
        prepared = conn.exec_driver_sql(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%WHERE events.stream_id IN (%%'"
        ).scalars().all()
    assert sorted(text.count("::VARCHAR") for text in prepared) == [1, 2, 4, 8]


def test_in_list_selects_by_columns_and_by_tuples_on_either_backend(database_url: str) -> None:
    """``in_list`` with ``bound_list``: one placeholder per value (a tuple's per part), the
    values padded and bound by name, the same rows as the IN would give on SQLite and PostgreSQL."""
    metadata = sa.MetaData()
    pairs = sa.Table("in_list_pairs", metadata, sa.Column("name", sa.String(20), primary_key=True),
                     sa.Column("year", sa.Integer, primary_key=True), sa.Column("amount", sa.BigInteger))
    engine = create_engine(database_url)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(pairs.insert(), [{"name": f"P{n}", "year": 2020 + n % 3, "amount": n} for n in range(12)])
            by_name = sa.select(pairs.c.amount).where(in_list(pairs.c.name, "names", 4)).order_by(pairs.c.amount)
            size, params = bound_list("names", ["P1", "P5", "P7"])
            assert size == 4
            assert conn.execute(by_name, params).scalars().all() == [1, 5, 7]
            by_key = sa.select(pairs.c.amount).where(
                in_list(sa.tuple_(pairs.c.name, pairs.c.year), "keys", 2)).order_by(pairs.c.amount)
            wanted = [("P4", 2021), ("P5", 2021)]  # P5 is in 2022: not selected
            assert conn.execute(by_key, bound_list("keys", wanted)[1]).scalars().all() == [4]
        assert bound_list("keys", wanted) == (2, {"keys_0_0": "P4", "keys_0_1": 2021, "keys_1_0": "P5", "keys_1_1": 2021})
        assert str(by_name).count(":names_") == 4
    finally:
        metadata.drop_all(engine)
        engine.dispose()
