"""Statements binding a list of any length keep a few texts (``padded``: one per power of two),
so psycopg prepares them and PostgreSQL plans each once per connection, where every length was a
text parsed and planned on each run, pushing the fixed statements out of the prepared ones."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from pension_shared.db import padded
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
