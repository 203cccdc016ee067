import pytest
import sqlalchemy as sa

from pension_shared.db import create_engine, is_postgres
from pension_shared.migrations import upgrade
from pension_shared.schema import MECHANICS_TABLES
from shared_support.tally import MIGRATIONS

pytestmark = pytest.mark.postgres


def test_migrations_create_the_mechanics_tables_and_are_idempotent(database_url: str) -> None:
    upgrade(MIGRATIONS, database_url)
    upgrade(MIGRATIONS, database_url)  # a second run (every deploy) changes nothing
    engine = create_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        assert {t.name for t in MECHANICS_TABLES} | {"snapshots", "read_positions", "tally_totals", "tally_received",
                                                     "alembic_version"} <= tables
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("events")}
        assert ("stream_id", "sequence") in uniques
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"
        assert is_postgres(engine) == database_url.startswith("postgresql")
    finally:
        engine.dispose()


def test_migrations_need_a_database_url(tmp_path) -> None:  # noqa: ANN001
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with pytest.raises(RuntimeError, match="no database URL"):
        command.upgrade(config, "head")


def test_sqlite_engines_are_durable_and_in_wal_mode(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    finally:
        engine.dispose()
