"""Every service's ledger on PostgreSQL keeps each event's data parsed beside its text
(``pension_shared.schema.PARSED_DATA``), computed by the database: for the events appended after
the migration, and for those stored before it, when a ledger is migrated."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from pension_cli.platform import SERVICES
from pension_shared.db import create_engine
from pension_shared.ledger import EventStore, Metadata, NewEvent
from pension_shared.migrations import downgrade_before, upgrade
from pension_shared.runtime import ServiceDefinition
from pension_shared.verification import verify_ledger

pytestmark = pytest.mark.postgres

_DATA = {"amount": 120000, "name": "张三", "note": "a \"quoted\" \\ text", "ratio": "0.03", "evidence": ["a", "b"],
         "nested": {"z": 1, "a": [True, None]}, "empty": {}}


def _parsed(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(
            "SELECT data_jsonb, CAST(data AS jsonb) = data_jsonb FROM events ORDER BY position")]


@pytest.mark.parametrize("definition", SERVICES, ids=lambda d: d.name)
def test_each_event_keeps_its_data_parsed_by_the_database(definition: ServiceDefinition, postgres_url: str) -> None:
    upgrade(definition.migrations, postgres_url)
    engine = create_engine(postgres_url)
    store = EventStore(service=definition.name, topic=definition.topic, projections=[])
    stream = f"test-{uuid.uuid4().hex}"
    try:
        with engine.begin() as conn:
            store.append(conn, stream, 0, [NewEvent("Noted", _DATA, "P1"), NewEvent("Noted", {"amount": 1}, "P1")],
                         Metadata(time="2025-08-15T17:00:00+08:00"))
        assert _parsed(engine) == [(_DATA, True), ({"amount": 1}, True)]

        # A ledger migrated with events already stored: each is parsed by the migration.
        downgrade_before(definition.migrations, postgres_url, "events_parsed_data")
        with engine.connect() as conn:
            assert "data_jsonb" not in {c["name"] for c in sa.inspect(conn).get_columns("events")}
        upgrade(definition.migrations, postgres_url)
        assert _parsed(engine) == [(_DATA, True), ({"amount": 1}, True)]
        with engine.connect() as conn:
            report = verify_ledger(conn)
        assert report.intact and report.events == 2
    finally:
        engine.dispose()
