"""Every service's ledger is indexed by event type (``pension_shared.schema.TYPE_INDEX``), on both
backends: made by a migration of the service's, and taken away by its downgrade."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pension_cli.platform import SERVICES
from pension_shared.db import create_engine
from pension_shared.migrations import downgrade_before, upgrade
from pension_shared.runtime import ServiceDefinition
from pension_shared.schema import TYPE_INDEX


def _indexed_columns(engine: sa.Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {index["name"]: index["column_names"] for index in sa.inspect(conn).get_indexes("events")}


@pytest.mark.parametrize("definition", SERVICES, ids=lambda d: d.name)
def test_a_migration_indexes_the_ledger_by_type(definition: ServiceDefinition, database_url: str) -> None:
    upgrade(definition.migrations, database_url)
    engine = create_engine(database_url)
    try:
        assert _indexed_columns(engine)[TYPE_INDEX] == ["type"]

        downgrade_before(definition.migrations, database_url, "events_type_index")
        assert TYPE_INDEX not in _indexed_columns(engine)

        upgrade(definition.migrations, database_url)
        assert _indexed_columns(engine)[TYPE_INDEX] == ["type"]
    finally:
        engine.dispose()
