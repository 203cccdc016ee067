"""Read-your-writes across services: the positions writes return, what consumers record of the
ledgers they read, and how long a read given a position waits (pension_shared.positions and
pension_shared.read_positions)."""

import pytest
import sqlalchemy as sa

from pension_shared.messaging import IncomingRecord
from pension_shared.positions import ANY_PARTICIPANT, LEDGERS, PER_LEDGER, LedgerPosition, of, returned
from pension_shared.read_positions import (
    applied_position, highest_positions, record_positions, wait_until_applied,
)
from pension_shared.schema import read_positions


def test_a_returned_position_names_its_ledger_and_the_place_in_it() -> None:
    assert returned("fund-account", 136) == 2_000_000_000_000_136
    for ledger in LEDGERS:
        for position in (0, 1, 136, PER_LEDGER - 1):
            assert of(returned(ledger, position)) == LedgerPosition(ledger, position)
    assert returned("payout", PER_LEDGER - 1) < 2**53  # exact in every JSON reader


@pytest.mark.parametrize("number", [0, 136, PER_LEDGER - 1, (len(LEDGERS) + 1) * PER_LEDGER, 2**63 - 1])
def test_a_number_outside_every_ledgers_range_names_none(number: int) -> None:
    assert of(number) is None


def test_a_position_outside_a_ledgers_range_cannot_be_returned() -> None:
    with pytest.raises(ValueError):
        returned("tax", PER_LEDGER)
    with pytest.raises(ValueError):
        returned("tax", -1)
    with pytest.raises(ValueError):
        returned("pension", 1)


def _record(topic: str, key: str | None, position: bytes | None, offset: int = 0) -> IncomingRecord:
    headers = (("position", position),) if position is not None else ()
    return IncomingRecord(topic, 0, offset, key, b"{}", (("other", b"x"), *headers))


def test_the_highest_position_of_each_ledger_is_kept_per_participant_and_for_anyone() -> None:
    ledgers = {"t.pension.fund-account": "fund-account", "t.pension.payout": "payout"}
    records = [
        _record("t.pension.fund-account", "P1", b"7"), _record("t.pension.fund-account", "P1", b"5"),
        _record("t.pension.fund-account", "P2", b"9"), _record("t.pension.payout", "P1", b"3"),
        _record("t.pension.tax", "P1", b"99"),  # a topic it does not read the ledger of
        _record("t.pension.fund-account", "P3", None),  # published before positions were sent
        _record("t.pension.fund-account", "P4", b"not a number"),
    ]
    assert highest_positions(records, ledgers) == {
        ("fund-account", "P1"): 7, ("fund-account", "P2"): 9, ("fund-account", ANY_PARTICIPANT): 9,
        ("payout", "P1"): 3, ("payout", ANY_PARTICIPANT): 3,
    }


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'positions.db'}")
    else:
        engine = sa.create_engine(request.getfixturevalue("new_postgres_database")())
    read_positions.create(engine)
    yield engine
    engine.dispose()


def test_a_recorded_position_is_only_ever_raised(engine) -> None:
    with engine.begin() as conn:
        record_positions(conn, {("fund-account", "P1"): 7, ("fund-account", ANY_PARTICIPANT): 7})
    with engine.begin() as conn:
        record_positions(conn, {("fund-account", "P1"): 5, ("fund-account", ANY_PARTICIPANT): 12})
    with engine.connect() as conn:
        assert applied_position(conn, "fund-account", "P1") == 7
        assert applied_position(conn, "fund-account", ANY_PARTICIPANT) == 12
        assert applied_position(conn, "fund-account", "P2") == 0
        assert applied_position(conn, "payout", "P1") == 0


class _Time:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_a_read_waits_for_what_its_position_names_and_no_longer(engine) -> None:
    reads = ("account", "fund-account", "payout")  # the tax service's
    time = _Time()

    def wait(min_position, participant_id=None, **kwargs):  # noqa: ANN001, ANN202
        return wait_until_applied(engine, "tax", reads, min_position, participant_id, sleep=time.sleep,
                                  clock=lambda: time.now, **kwargs)

    # Nothing to wait for: no position, the reader's own ledger, a ledger it does not read, no ledger.
    for needless in (None, returned("tax", 10**6), 42):
        assert wait(needless, "P1") and time.slept == 0
    with engine.begin() as conn:
        record_positions(conn, {("fund-account", "P1"): 7, ("fund-account", ANY_PARTICIPANT): 9})
    assert wait(returned("fund-account", 7), "P1") and time.slept == 0
    assert wait(returned("fund-account", 9)) and time.slept == 0  # any participant's
    # Not applied yet: it waits, then says so, after the time it was given.
    assert not wait(returned("fund-account", 8), "P1", wait_s=0.5)
    assert 0.5 <= time.slept < 0.55
    assert not wait(returned("payout", 1), "P1", wait_s=0.2)
