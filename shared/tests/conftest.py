"""Fixtures for the mechanics' own tests: a toy "tally" service on a migrated database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from shared_support.tally import TallyService, migrate  # noqa: E402


@pytest.fixture
def tally(database_url: str):
    """The toy service on a freshly migrated database, once per backend (sqlite, postgres)."""
    migrate(database_url)
    service = TallyService(database_url)
    yield service
    service.close()


@pytest.fixture
def pg_tally(postgres_url: str):
    migrate(postgres_url)
    service = TallyService(postgres_url)
    yield service
    service.close()


@pytest.fixture
def sqlite_tally(sqlite_url: str):
    migrate(sqlite_url)
    service = TallyService(sqlite_url)
    yield service
    service.close()
