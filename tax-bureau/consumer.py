"""The tax bureau's reference consumer of ``pension.tax``.

A small, self-contained program (Python 3.11 standard library + kafka-python; nothing from the
pension packages) showing how to read the feed safely:

* it reads ``pension.tax`` in a consumer group, resuming from the group's committed offsets
  (``--from-beginning`` replays the topic from the start, ``--offset N`` from offset N);
* it verifies every event: its ``hash`` is recomputed from the event itself, and each stream's
  chain is checked (``prevhash`` is the hash last seen on that ``streamid`` and ``sequence`` follows
  on without a gap);
* it stores per-taxpayer figures per year (contributed, deductible, gross withdrawn, tax withheld),
  the vouchers, withholdings and statements in a local SQLite file, together with the id of every
  event applied, in one transaction per event, so a duplicate is recognised and skipped;
* it commits the Kafka offsets only after what it polled is stored, so a crash at any point
  loses nothing and a restart only sees duplicates again.

Run ``python tax-bureau/consumer.py --help``."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("tax-bureau")

TOPIC = "pension.tax"
TYPE_PREFIX = "cn.pension.tax."

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, streamid TEXT NOT NULL, sequence INTEGER NOT NULL,
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_heads (
    streamid TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash TEXT NOT NULL, anchored INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected_events (
    event_id TEXT, topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS taxpayers (participant_id TEXT PRIMARY KEY, id_number TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taxpayer_years (
    participant_id TEXT NOT NULL, year INTEGER NOT NULL,
    contributed INTEGER NOT NULL DEFAULT 0, deductible INTEGER NOT NULL DEFAULT 0,
    withdrawn_gross INTEGER NOT NULL DEFAULT 0, tax_withheld INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (participant_id, year)
);
CREATE TABLE IF NOT EXISTS vouchers (
    voucher_no TEXT PRIMARY KEY, participant_id TEXT NOT NULL, year INTEGER NOT NULL, amount INTEGER NOT NULL,
    deductible_amount INTEGER NOT NULL, cumulative_amount INTEGER NOT NULL, verification_code TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS withholdings (
    payout_id TEXT PRIMARY KEY, participant_id TEXT NOT NULL, bank_code TEXT NOT NULL, month TEXT NOT NULL,
    gross INTEGER NOT NULL, tax INTEGER NOT NULL, discrepancy INTEGER NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS statements (
    participant_id TEXT NOT NULL, year INTEGER NOT NULL, contributed INTEGER NOT NULL, deductible INTEGER NOT NULL,
    withdrawn_gross INTEGER NOT NULL, tax_withheld INTEGER NOT NULL, issued_at TEXT NOT NULL,
    PRIMARY KEY (participant_id, year)
);
"""


# -- verifying -------------------------------------------------------------------------------

def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every attribute except ``hash``: keys sorted at every level,
    no whitespace (``,`` and ``:``), UTF-8 without \\u-escaping of non-ASCII characters. ``data`` is
    hashed as the nested object it is, and a first event's ``prevhash`` as JSON ``null``; attributes
    the producer left out (``correlationid``, ``causationid``) are simply absent."""
    hashed = {name: value for name, value in event.items() if name != "hash"}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Rejected(Exception):
    """An event that fails verification: recorded and not applied."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes


def _decode(record: Record) -> dict[str, Any]:
    try:
        event = json.loads(record.value)
    except ValueError as exc:
        raise Rejected(f"not JSON: {exc}") from exc
    for name in ("id", "type", "streamid", "sequence", "hash", "data"):
        if name not in event:
            raise Rejected(f"missing attribute {name}")
    if event_hash(event) != event["hash"]:
        raise Rejected("hash does not match the event's content")
    return event


def _check_chain(db: sqlite3.Connection, event: dict[str, Any]) -> None:
    head = db.execute("SELECT sequence, hash FROM stream_heads WHERE streamid = ?", (event["streamid"],)).fetchone()
    if head is None:
        if event["sequence"] == 1 and event.get("prevhash") is None:
            return
        if event["sequence"] > 1:
            log.warning("stream %s first seen at sequence %d: anchored there (started mid-topic)",
                        event["streamid"], event["sequence"])
            return
        raise Rejected("the first event of a stream must have no prevhash")
    sequence, last_hash = head
    if event["sequence"] != sequence + 1:
        raise Rejected(f"sequence {event['sequence']} does not follow {sequence} on {event['streamid']}")
    if event.get("prevhash") != last_hash:
        raise Rejected(f"prevhash does not match the last hash seen on {event['streamid']}")


# -- storing ---------------------------------------------------------------------------------

def _year_add(db: sqlite3.Connection, participant_id: str, year: int, **deltas: int) -> None:
    db.execute("INSERT OR IGNORE INTO taxpayer_years (participant_id, year) VALUES (?, ?)", (participant_id, year))
    assignments = ", ".join(f"{column} = {column} + ?" for column in deltas)
    db.execute(f"UPDATE taxpayer_years SET {assignments} WHERE participant_id = ? AND year = ?",
               (*deltas.values(), participant_id, year))


def _year_set(db: sqlite3.Connection, participant_id: str, year: int, **values: int) -> None:
    db.execute("INSERT OR IGNORE INTO taxpayer_years (participant_id, year) VALUES (?, ?)", (participant_id, year))
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(f"UPDATE taxpayer_years SET {assignments} WHERE participant_id = ? AND year = ?",
               (*values.values(), participant_id, year))


def _apply(db: sqlite3.Connection, name: str, data: dict[str, Any]) -> None:
    """What each event type means for the bureau's books (amounts in fen)."""
    if name == "TaxpayerRegistered":
        db.execute("INSERT OR REPLACE INTO taxpayers VALUES (?, ?, ?)", (data["participant_id"], data["id_number"], data["name"]))
    elif name == "DeductionVoucherIssued":
        db.execute("INSERT INTO vouchers VALUES (?, ?, ?, ?, ?, ?, ?, 'issued')", (
            data["voucher_no"], data["participant_id"], data["year"], data["amount"], data["deductible_amount"],
            data["cumulative_amount"], data["verification_code"]))
        _year_add(db, data["participant_id"], data["year"], contributed=data["amount"], deductible=data["deductible_amount"])
    elif name == "DeductionVoucherVoided":
        db.execute("UPDATE vouchers SET status = 'voided' WHERE voucher_no = ?", (data["voucher_no"],))
        _year_set(db, data["participant_id"], data["year"], contributed=data["cumulative_amount"],
                  deductible=data["deductible_total"])
    elif name == "WithdrawalTaxWithheld":
        db.execute("INSERT INTO withholdings VALUES (?, ?, ?, ?, ?, ?, ?, 'withheld')", (
            data["payout_id"], data["participant_id"], data["bank_code"], data["month"], data["gross"], data["tax"],
            int(bool(data.get("discrepancy")))))
        _year_add(db, data["participant_id"], data["year"], withdrawn_gross=data["gross"], tax_withheld=data["tax"])
    elif name == "WithdrawalTaxWithholdingReversed":
        db.execute("UPDATE withholdings SET status = 'reversed' WHERE payout_id = ?", (data["payout_id"],))
        _year_add(db, data["participant_id"], data["year"], withdrawn_gross=-data["gross"], tax_withheld=-data["tax"])
    elif name == "AnnualTaxStatementIssued":
        db.execute("INSERT OR REPLACE INTO statements VALUES (?, ?, ?, ?, ?, ?, ?)", (
            data["participant_id"], data["year"], data["contributed"], data["deductible"], data["withdrawn_gross"],
            data["tax_withheld"], data["issued_at"]))


def store(db: sqlite3.Connection, record: Record) -> str:
    """Verify and apply one record in one transaction: ``applied``, ``duplicate`` or ``rejected``."""
    try:
        with db:
            event = _decode(record)
            seen = db.execute("SELECT 1 FROM processed_events WHERE event_id = ?", (event["id"],)).fetchone()
            if seen:
                return "duplicate"
            _check_chain(db, event)
            if event["type"].startswith(TYPE_PREFIX):
                _apply(db, event["type"][len(TYPE_PREFIX):].rsplit(".", 1)[0], event["data"])
            db.execute("INSERT INTO processed_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
                event["id"], event["type"], event["streamid"], event["sequence"], record.topic, record.partition,
                record.offset, time.time()))
            db.execute("INSERT OR REPLACE INTO stream_heads VALUES (?, ?, ?, ?)",
                       (event["streamid"], event["sequence"], event["hash"], 1))
            return "applied"
    except Rejected as exc:
        log.error("rejected %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
        with db:
            db.execute("INSERT OR REPLACE INTO rejected_events VALUES (?, ?, ?, ?, ?)",
                       (_event_id(record), record.topic, record.partition, record.offset, str(exc)))
        return "rejected"


def _event_id(record: Record) -> str | None:
    try:
        return json.loads(record.value).get("id")
    except ValueError:
        return None


def open_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def totals(db: sqlite3.Connection) -> dict[tuple[str, int], dict[str, int]]:
    """Per taxpayer and year: contributed, deductible, withdrawn_gross, tax_withheld (fen)."""
    rows = db.execute("SELECT participant_id, year, contributed, deductible, withdrawn_gross, tax_withheld "
                      "FROM taxpayer_years ORDER BY participant_id, year").fetchall()
    return {(r[0], r[1]): {"contributed": r[2], "deductible": r[3], "withdrawn_gross": r[4], "tax_withheld": r[5]}
            for r in rows}


# -- consuming -------------------------------------------------------------------------------

def consume(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer  # kafka-python
    from kafka.consumer.subscription_state import ConsumerRebalanceListener

    db = open_store(Path(args.db))
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=f"tax-bureau-{args.group}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=args.batch_size,
        # A consumer that died without leaving holds its partitions until its session times out:
        # its successor takes them over after 10 s rather than the client's default 45 s.
        session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
    )

    class Start(ConsumerRebalanceListener):
        """Where to start on the partitions first assigned: the committed offsets unless told otherwise."""

        def __init__(self) -> None:
            self.done: set = set()

        def on_partitions_revoked(self, revoked: Iterable) -> None:
            pass

        def on_partitions_assigned(self, assigned: Iterable) -> None:
            fresh = [tp for tp in assigned if tp not in self.done]
            self.done.update(fresh)
            if args.from_beginning and fresh:
                consumer.seek_to_beginning(*fresh)
            elif args.offset is not None:
                for tp in fresh:
                    consumer.seek(tp, args.offset)

    # Subscribed at once, the consumer joins its group while its first metadata request is in
    # flight: it is assigned none of the topic's partitions ("No partition metadata") until a later
    # metadata response and a second rebalance. Asking for them first avoids that.
    consumer.partitions_for_topic(args.topic)
    consumer.subscribe([args.topic], listener=Start())
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    counts = {"applied": 0, "duplicate": 0, "rejected": 0}
    idle_since = time.monotonic()
    try:
        while not stop["now"]:
            batches = consumer.poll(timeout_ms=500)
            records = [Record(r.topic, r.partition, r.offset, r.value) for rs in batches.values() for r in rs]
            if not consumer.assignment():
                idle_since = time.monotonic()  # still joining the group (a dead member may hold it a while)
            for record in records:
                counts[store(db, record)] += 1
            if records:
                consumer.commit()  # only after everything polled is stored
                idle_since = time.monotonic()
                if args.pause_ms:
                    time.sleep(args.pause_ms / 1000)
            elif args.exit_when_idle is not None and time.monotonic() - idle_since > args.exit_when_idle:
                break
    finally:
        consumer.close(autocommit=False)
        db.close()
    log.info("applied %(applied)d, duplicates %(duplicate)d, rejected %(rejected)d", counts)
    print(json.dumps(counts), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tax-bureau-consumer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, e.g. 127.0.0.1:19092")
    parser.add_argument("--group", required=True, help="the consumer group (offsets are committed there)")
    parser.add_argument("--db", required=True, help="the SQLite file keeping the figures and processed event ids")
    parser.add_argument("--topic", default=TOPIC)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="replay the topic from its first offset")
    start.add_argument("--offset", type=int, help="start every partition at this offset")
    parser.add_argument("--batch-size", type=int, default=500, help="records per poll")
    parser.add_argument("--pause-ms", type=int, default=0, help="pause after each batch (throttling)")
    parser.add_argument("--exit-when-idle", type=float, metavar="SECONDS",
                        help="stop after this long without records (batch runs); default: run until SIGTERM")
    parser.add_argument("--totals", action="store_true", help="print the stored totals as JSON and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.totals:
        db = open_store(Path(args.db))
        print(json.dumps({f"{p}/{y}": figures for (p, y), figures in totals(db).items()}, ensure_ascii=False))
        return 0
    return consume(args)


if __name__ == "__main__":
    sys.exit(main())
