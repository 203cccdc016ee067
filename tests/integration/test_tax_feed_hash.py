"""The tax bureau's reference consumer recomputes event hashes with its own, pension-independent
code: it must agree with the ledger's hashing exactly (nested data, null prevhash, absent
correlation ids, non-ASCII names)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import orjson

from pension_shared.envelope import Envelope
from tests.support.tax_scenario import reference_consumer

def recorded(sequence: int, prevhash: str | None, data: dict, **ids: str | None) -> Envelope:
    unsigned = Envelope(
        id=f"e{sequence}", source="/pension/tax", type="cn.pension.tax.DeductionVoucherIssued.v1",
        time="2025-03-10T10:00:00.000000+08:00", subject="P1", streamid="taxpayer-P1", sequence=sequence,
        data=data, prevhash=prevhash, hash="", correlationid=ids.get("correlationid"), causationid=ids.get("causationid"),
    )
    return replace(unsigned, hash=unsigned.computed_hash())


def test_the_reference_consumer_computes_the_ledgers_hash_exactly():
    consumer = reference_consumer()
    first = recorded(1, None, {"name": "张三", "amount": 500_000, "nested": {"b": [1, {"z": None, "a": True}], "a": "é"}})
    second = recorded(2, first.hash, {"name": "李四\u2028", "control": "\x01\t"}, correlationid="c", causationid="x")
    for envelope in (first, second):
        published = orjson.loads(envelope.to_json())
        assert consumer.event_hash(published) == envelope.hash


def test_the_reference_consumer_verifies_the_chain_and_skips_duplicates(tmp_path):
    consumer = reference_consumer()
    db = consumer.open_store(tmp_path / "bureau.db")
    first = recorded(1, None, {"participant_id": "P1", "id_number": "11010519491231002X", "name": "张三",
                               "registered_at": "2025-03-10T10:00:00+08:00"})
    first = replace(first, type="cn.pension.tax.TaxpayerRegistered.v1")
    first = replace(first, hash=first.computed_hash())
    second = recorded(2, first.hash, {"voucher_no": "V2025AAAAAAAAAAAAAAAA", "participant_id": "P1", "year": 2025,
                                      "amount": 100, "deductible_amount": 100, "cumulative_amount": 100,
                                      "verification_code": "ABCDEF012345"})
    record = lambda envelope, offset: consumer.Record("pension.tax", 0, offset, envelope.to_json())  # noqa: E731
    assert consumer.store(db, record(first, 0)) == "applied"
    assert consumer.store(db, record(second, 1)) == "applied"
    assert consumer.store(db, record(second, 1)) == "duplicate"
    tampered = orjson.loads(second.to_json())
    tampered["data"]["amount"] = 1_000_000
    assert consumer.store(db, consumer.Record("pension.tax", 0, 2, orjson.dumps(tampered))) == "rejected"
    forked = recorded(3, "0" * 64, {"participant_id": "P1"})
    assert consumer.store(db, record(forked, 3)) == "rejected"
    assert consumer.totals(db) == {("P1", 2025): {"contributed": 100, "deductible": 100, "withdrawn_gross": 0,
                                                  "tax_withheld": 0}}
    assert isinstance(db, sqlite3.Connection)
