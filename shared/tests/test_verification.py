"""Tampering with a stored ledger is detected and reported exactly."""

import orjson
import pytest
import sqlalchemy as sa

from pension_shared.ledger import NewEvent
from pension_shared.schema import events, stream_heads
from pension_shared.verification import ChainBreak, verify_ledger
from shared_support.tally import TallyService, meta, stream_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def ledger(tally: TallyService) -> TallyService:
    """Three streams: P1 with 5 events, P2 with 3, P3 with 1."""
    tally.add("P1", 10, times=3)
    tally.add("P2", 20, times=3)
    tally.add("P1", 11, times=2)
    tally.add("P3", 30)
    with tally.engine.connect() as conn:
        assert verify_ledger(conn).intact
    return tally


def stored(tally: TallyService, stream_id: str, sequence: int):  # noqa: ANN201
    with tally.engine.connect() as conn:
        return conn.execute(
            sa.select(events).where(events.c.stream_id == stream_id, events.c.sequence == sequence)
        ).one()


def tamper(tally: TallyService, statement: sa.Executable) -> None:
    with tally.engine.begin() as conn:
        assert conn.execute(statement).rowcount == 1


def only_break(tally: TallyService, *, batch_size: int = 5000) -> ChainBreak:
    with tally.engine.connect() as conn:
        report = verify_ledger(conn, batch_size=batch_size)
    assert not report.intact
    assert len(report.breaks) == 1, report.breaks
    assert report.first_break == report.breaks[0]
    return report.breaks[0]


@pytest.mark.parametrize("batch_size", [5000, 2])
def test_editing_an_events_data_is_reported_at_that_stream_sequence_and_event(ledger: TallyService, batch_size: int) -> None:
    victim = stored(ledger, "tally-P1", 2)
    forged = orjson.dumps({"amount": 1_000_000}).decode()
    tamper(ledger, events.update().where(events.c.event_id == victim.event_id).values(data=forged))
    found = only_break(ledger, batch_size=batch_size)
    assert (found.stream_id, found.sequence, found.event_id, found.position) == ("tally-P1", 2, victim.event_id, victim.position)
    assert "edited" in found.reason
    assert f"stream tally-P1 sequence 2 (position {victim.position}, event {victim.event_id})" in str(found)


def test_editing_data_with_a_raw_sql_update_of_the_json_text_is_reported(ledger: TallyService) -> None:
    victim = stored(ledger, "tally-P2", 3)
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET data = replace(data, '20', '21') WHERE event_id = :id"), {"id": victim.event_id})
    found = only_break(ledger)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P2", 3, victim.event_id)


@pytest.mark.parametrize("column", ["type", "subject", "time", "source", "correlation_id"])
def test_editing_any_other_hashed_column_is_reported(ledger: TallyService, column: str) -> None:
    victim = stored(ledger, "tally-P1", 4)
    value = {"type": "cn.pension.tally.Added.v2", "subject": "P9", "time": "2030-01-01T00:00:00+08:00",
             "source": "/pension/evil", "correlation_id": "forged"}[column]
    tamper(ledger, events.update().where(events.c.event_id == victim.event_id).values({column: value}))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P1", 4, victim.event_id)


def test_data_that_is_no_longer_json_is_reported(ledger: TallyService) -> None:
    victim = stored(ledger, "tally-P3", 1)
    tamper(ledger, events.update().where(events.c.event_id == victim.event_id).values(data="{broken"))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P3", 1, victim.event_id)
    assert "not JSON" in found.reason


@pytest.mark.parametrize("batch_size", [5000, 3])
def test_deleting_a_middle_event_is_reported_at_the_gap(ledger: TallyService, batch_size: int) -> None:
    victim = stored(ledger, "tally-P1", 3)
    after = stored(ledger, "tally-P1", 4)
    tamper(ledger, events.delete().where(events.c.event_id == victim.event_id))
    found = only_break(ledger, batch_size=batch_size)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P1", 4, after.event_id)
    assert "missing" in found.reason


def test_deleting_the_first_event_is_reported(ledger: TallyService) -> None:
    tamper(ledger, events.delete().where(events.c.event_id == stored(ledger, "tally-P2", 1).event_id))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence) == ("tally-P2", 2)


def test_deleting_the_last_event_of_a_stream_is_reported_through_its_head(ledger: TallyService) -> None:
    tamper(ledger, events.delete().where(events.c.event_id == stored(ledger, "tally-P1", 5).event_id))
    found = only_break(ledger)
    assert found.stream_id == "tally-P1"
    assert found.sequence is None
    assert "version 5" in found.reason and "ends at 4" in found.reason


def test_deleting_the_only_event_of_a_stream_is_reported_through_its_head(ledger: TallyService) -> None:
    tamper(ledger, events.delete().where(events.c.event_id == stored(ledger, "tally-P3", 1).event_id))
    found = only_break(ledger)
    assert found.stream_id == "tally-P3" and "no events" in found.reason


def test_deleting_the_last_event_and_rewinding_the_head_version_is_still_reported(ledger: TallyService) -> None:
    tamper(ledger, events.delete().where(events.c.event_id == stored(ledger, "tally-P1", 5).event_id))
    tamper(ledger, stream_heads.update().where(stream_heads.c.stream_id == "tally-P1").values(version=4))
    found = only_break(ledger)
    assert found.stream_id == "tally-P1" and "hash" in found.reason


def test_a_stream_without_a_head_is_reported(ledger: TallyService) -> None:
    tamper(ledger, stream_heads.delete().where(stream_heads.c.stream_id == "tally-P2"))
    found = only_break(ledger)
    assert found.stream_id == "tally-P2" and "no head" in found.reason


def test_editing_a_prevhash_is_reported(ledger: TallyService) -> None:
    victim = stored(ledger, "tally-P1", 3)
    tamper(ledger, events.update().where(events.c.event_id == victim.event_id).values(prevhash="0" * 64))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P1", 3, victim.event_id)
    assert "prevhash" in found.reason


def test_re_hashing_an_edited_event_breaks_the_link_to_the_next_one(ledger: TallyService) -> None:
    """A forger who recomputes the edited event's own hash is caught by its successor."""
    from pension_shared.envelope import chain_hash

    victim = stored(ledger, "tally-P1", 2)
    data = {"amount": 999}
    new_hash = chain_hash(
        id=victim.event_id, source=victim.source, type=victim.type, time=victim.time, subject=victim.subject,
        streamid=victim.stream_id, sequence=victim.sequence, data=data, prevhash=victim.prevhash,
        correlationid=victim.correlation_id, causationid=victim.causation_id,
    )
    tamper(ledger, events.update().where(events.c.event_id == victim.event_id).values(data=orjson.dumps(data).decode(), hash=new_hash))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence) == ("tally-P1", 3)
    assert "prevhash" in found.reason


def test_swapping_two_events_sequence_numbers_is_reported(ledger: TallyService) -> None:
    one, two = stored(ledger, "tally-P2", 1), stored(ledger, "tally-P2", 2)
    with ledger.engine.begin() as conn:
        conn.execute(events.update().where(events.c.event_id == one.event_id).values(sequence=-1))
        conn.execute(events.update().where(events.c.event_id == two.event_id).values(sequence=1))
        conn.execute(events.update().where(events.c.event_id == one.event_id).values(sequence=2))
    found = only_break(ledger)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P2", 1, two.event_id)


def test_breaks_in_several_streams_are_all_reported_and_the_rest_still_counted(ledger: TallyService) -> None:
    tamper(ledger, events.update().where(events.c.event_id == stored(ledger, "tally-P1", 1).event_id).values(data='{"amount": 1}'))
    tamper(ledger, events.delete().where(events.c.event_id == stored(ledger, "tally-P2", 2).event_id))
    with ledger.engine.connect() as conn:
        report = verify_ledger(conn)
    assert [(b.stream_id, b.sequence) for b in report.breaks] == [("tally-P1", 1), ("tally-P2", 3)]
    assert (report.streams, report.events) == (3, 8)


# -- the database's screen on PostgreSQL sends streams to the exact check, never excuses one --------

QUOTED = 'P"1\\\x07'
"""A subject with the characters whose JSON differs from the plain text (quote, backslash, control)."""


def test_events_with_characters_json_escapes_are_checked_exactly_and_pass(tally: TallyService) -> None:
    tally.add(QUOTED, 5, times=2)
    tally.add("P2", 7)
    with tally.engine.connect() as conn:
        report = verify_ledger(conn)
    assert report.intact, report.breaks
    assert (report.streams, report.events) == (2, 3)


def test_an_intact_ledger_passes_the_screen_without_a_stream_sent_to_the_exact_check(
    pg_tally: TallyService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The screen builds each event's document byte for byte as the store hashed it: with and
    without correlation and causation ids, for first and later events, and around data whose JSON
    has escapes and characters beyond ASCII. Otherwise every stream would go to the slow check."""
    def exact_check(conn: object, batch_size: int, streams: set[str]) -> None:
        raise AssertionError(f"streams sent to the exact check: {sorted(streams)}")

    monkeypatch.setattr("pension_shared.verification._checked", exact_check)
    note = {"amount": 1, "note": 'a "quoted" \\ 个人养老金\n\t\u0001 €'}
    for n, (correlation, causation) in enumerate([(None, None), ("c-1", None), (None, "e-1"), ("c-2", "e-2")]):
        subject = f"P{n}"
        for times in (1, 2):
            with pg_tally.engine.begin() as conn:
                stream = pg_tally.store.load(conn, stream_of(subject))
                pg_tally.store.append(conn, stream.stream_id, stream.version,
                                      [NewEvent("Added", note, subject)] * times, meta(correlation, causation))
    with pg_tally.engine.connect() as conn:
        report = verify_ledger(conn)
    assert report.intact
    assert (report.streams, report.events) == (4, 12)


def naive_hash(event, *, stream_id: str | None = None) -> str:  # noqa: ANN001
    """SHA-256 of the event's attributes put into the document without JSON escaping (as a naive
    concatenation in SQL would), with ``stream_id`` in place of its own when given."""
    import hashlib

    assert event.correlation_id is None and event.causation_id is None  # the naive text leaves them out
    naive = (
        f'{{"data":{event.data},"datacontenttype":"application/json","id":"{event.event_id}","prevhash":null,'
        f'"sequence":1,"source":"{event.source}","specversion":"1.0","streamid":"{stream_id or event.stream_id}",'
        f'"subject":"{event.subject}","time":"{event.time}","type":"{event.type}"}}'
    )
    return hashlib.sha256(naive.encode()).hexdigest()


def test_a_hash_forged_over_the_unescaped_text_is_reported(tally: TallyService) -> None:
    """A forger who hashes the attributes without JSON escaping must not get past the screen:
    only the canonical document counts."""
    tally.add(QUOTED, 5)
    victim = stored(tally, f"tally-{QUOTED}", 1)
    forged = naive_hash(victim)
    tamper(tally, events.update().where(events.c.event_id == victim.event_id).values(hash=forged))
    tamper(tally, stream_heads.update().where(stream_heads.c.stream_id == victim.stream_id).values(head_hash=forged))
    found = only_break(tally)
    assert (found.stream_id, found.sequence, found.event_id) == (victim.stream_id, 1, victim.event_id)
    assert "edited" in found.reason


def test_a_stream_id_forged_with_characters_json_escapes_is_reported(tally: TallyService) -> None:
    """The screen checks a stream's id once per stream: a stream renamed to an id with a quote,
    whose hashes are forged over the unescaped text, still goes to the exact check."""
    tally.add("P9", 5)
    victim = stored(tally, "tally-P9", 1)
    renamed = 'tally-P"9\\'
    forged = naive_hash(victim, stream_id=renamed)
    tamper(tally, events.update().where(events.c.event_id == victim.event_id).values(stream_id=renamed, hash=forged))
    tamper(tally, stream_heads.update().where(stream_heads.c.stream_id == victim.stream_id)
           .values(stream_id=renamed, head_hash=forged))
    found = only_break(tally)
    assert (found.stream_id, found.sequence, found.event_id) == (renamed, 1, victim.event_id)
    assert "edited" in found.reason


def test_a_stored_hash_that_is_not_hex_is_reported(tally: TallyService) -> None:
    tally.add("P1", 5, times=2)
    victim = stored(tally, "tally-P1", 2)
    tamper(tally, events.update().where(events.c.event_id == victim.event_id).values(hash="not hex at all"))
    found = only_break(tally)
    assert (found.stream_id, found.sequence, found.event_id) == ("tally-P1", 2, victim.event_id)


def test_the_screen_and_the_exact_check_agree_on_every_kind_of_break(tally: TallyService) -> None:
    from pension_shared.verification import _checked

    for subject, times in (("A", 4), ("B", 3), ("C", 2), ("D", 1), (QUOTED, 2)):
        tally.add(subject, 1, times=times)
    tamper(tally, events.update().where(events.c.event_id == stored(tally, "tally-A", 2).event_id).values(data='{"amount":9}'))
    tamper(tally, events.delete().where(events.c.event_id == stored(tally, "tally-B", 3).event_id))
    tamper(tally, stream_heads.update().where(stream_heads.c.stream_id == "tally-C").values(version=5))
    tamper(tally, events.delete().where(events.c.stream_id == "tally-D"))
    with tally.engine.connect() as conn:
        screened = verify_ledger(conn)
    with tally.engine.connect() as conn:
        exact = _checked(conn, 5000)
    assert screened == exact
    assert [b.stream_id for b in screened.breaks] == ["tally-A", "tally-B", "tally-C", "tally-D"]
