"""The embedded platform in-process, as `pension run` composes it, for the security tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pension_cli.platform import Platform, embedded_platform


def start_platform(var_dir) -> Platform:  # noqa: ANN001
    platform = embedded_platform(var_dir)
    platform.migrate()
    platform.seed()
    platform.start_workers()
    return platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    started = start_platform(tmp_path_factory.mktemp("security"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(platform.app(), raise_server_exceptions=False) as test_client:
        yield test_client
