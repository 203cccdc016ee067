"""The fast paths of whole-ledger work give exactly what the one-by-one definitions give: hashing
stored data without parsing it, verifying with that hash, and projections applying batches."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from pension_shared.envelope import canonical_json, chain_hash, chain_hash_of_stored
from pension_shared.projection_batch import FoldedRows, existing_rows, insert_many, update_many, upsert_many
from pension_shared.schema import events
from pension_shared.verification import verify_ledger
from shared_support.tally import TallyService, tally_totals

pytestmark = pytest.mark.postgres

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=24) | st.sampled_from(['"data":0', '\\"data\\":0,', "张三"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(_text, _json, max_size=5), id_=_text, subject=_text, prevhash=st.none() | _text,
       correlation=st.none() | _text, causation=st.none() | _text, sequence=st.integers(1, 2**31))
def test_hashing_the_stored_canonical_data_equals_the_chain_hash(data, id_, subject, prevhash, correlation, causation,
                                                                sequence) -> None:
    attributes = dict(id=id_, source="/pension/tally", type="cn.pension.tally.Added.v1", time="2025-01-01T00:00:00+08:00",
                      subject=subject, streamid=f"tally-{subject}", sequence=sequence, prevhash=prevhash,
                      correlationid=correlation, causationid=causation)
    assert chain_hash_of_stored(data_json=canonical_json(data), **attributes) == chain_hash(data=data, **attributes)


def test_data_stored_with_other_whitespace_but_the_same_content_still_verifies(tally: TallyService) -> None:
    tally.add("P1", 10, times=3)
    with tally.engine.begin() as conn:
        row = conn.execute(sa.select(events).where(events.c.stream_id == "tally-P1", events.c.sequence == 2)).one()
        spaced = orjson.dumps(orjson.loads(row.data), option=orjson.OPT_INDENT_2).decode()
        conn.execute(events.update().where(events.c.event_id == row.event_id).values(data=spaced))
    with tally.engine.connect() as conn:
        report = verify_ledger(conn, batch_size=2)
    assert report.intact and report.events == 3 and report.streams == 1


def test_folded_rows_write_each_row_once_as_one_by_one_would(tally: TallyService) -> None:
    with tally.engine.begin() as conn:
        insert_many(conn, tally_totals, [{"subject": "OLD", "total": 1, "events": 1, "last_event_id": "e0"}])
        rows = FoldedRows(tally_totals)
        rows.update({"subject": "NEW", "total": 99})  # before its row exists: changes nothing
        rows.insert({"subject": "NEW", "total": 5, "events": 1, "last_event_id": "e1"})
        rows.update({"subject": "NEW", "total": 7, "events": 2})
        rows.update({"subject": "OLD", "total": 3})
        rows.update({"subject": "GONE", "total": 3})  # no such row: changes nothing
        rows.write(conn)
        stored = {r.subject: (r.total, r.events, r.last_event_id) for r in conn.execute(sa.select(tally_totals))}
    assert stored == {"OLD": (3, 1, "e0"), "NEW": (7, 2, "e1")}


def test_a_row_inserted_twice_in_one_batch_is_refused_as_one_by_one(tally: TallyService) -> None:
    with pytest.raises(IntegrityError), tally.engine.begin() as conn:
        rows = FoldedRows(tally_totals)
        row = {"subject": "A", "total": 1, "events": 1, "last_event_id": "e1"}
        rows.insert(row)
        rows.insert(row)
        rows.write(conn)


def test_upsert_update_and_read_many(tally: TallyService) -> None:
    with tally.engine.begin() as conn:
        upsert_many(conn, tally_totals, [{"subject": s, "total": 1, "events": 1, "last_event_id": "e"} for s in "ABC"])
        upsert_many(conn, tally_totals, [{"subject": "A", "total": 2, "events": 2, "last_event_id": "f"},
                                         {"subject": "D", "total": 4, "events": 1, "last_event_id": "g"}])
        update_many(conn, tally_totals, [{"subject": "B", "total": 20}, {"subject": "C", "events": 30}])
        found = existing_rows(conn, tally_totals, [("A",), ("B",), ("C",), ("D",), ("Z",)])
    assert {k[0]: (r["total"], r["events"]) for k, r in found.items()} == {
        "A": (2, 2), "B": (20, 1), "C": (1, 30), "D": (4, 1),
    }


def test_rebuild_gives_batches_to_apply_batch_and_events_one_by_one_to_apply(tally: TallyService) -> None:
    class Counting:
        name, tables = "counting", ()

        def __init__(self) -> None:
            self.seen: list[int] = []

        def apply(self, conn, event) -> None:  # noqa: ANN001
            self.seen.append(event.position)

    class Batched(Counting):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[int] = []

        def apply_batch(self, conn, batch) -> None:  # noqa: ANN001
            self.batches.append(len(batch))
            self.seen.extend(e.position for e in batch)

    tally.add("P1", 1, times=5)
    tally.add("P2", 2, times=2)
    one_by_one, batched = Counting(), Batched()
    store = tally.store
    store.projections = (*store.projections, one_by_one, batched)
    with tally.engine.begin() as conn:
        assert store.rebuild_projections(conn, batch_size=3) == 7
        positions = conn.execute(sa.select(events.c.position).order_by(events.c.position)).scalars().all()
    assert one_by_one.seen == batched.seen == positions
    assert batched.batches == [3, 3, 1]
