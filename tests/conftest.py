from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hubs import HubUnderTest, postgres_database, running_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    """The default deployment: embedded broker and SQLite, nothing else running."""
    async with running_hub(tmp_path) as test_hub:
        yield test_hub


@contextlib.asynccontextmanager
async def production_hub(tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    """The production deployment: an external Mosquitto (dynamic security) and PostgreSQL."""
    from tests.support.mosquitto import running_mosquitto

    with running_mosquitto(tmp_path / "mosquitto") as broker:
        async with (
            postgres_database() as url,
            running_hub(tmp_path / "hub", database_url=url, broker_url=broker.url) as test_hub,
        ):
            yield test_hub


@pytest.fixture(params=["embedded+sqlite", "mosquitto+postgresql"])
async def any_hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    """Both deployments: the same behaviour must hold on each."""
    if request.param == "embedded+sqlite":
        async with running_hub(tmp_path) as test_hub:
            yield test_hub
    else:
        async with production_hub(tmp_path) as test_hub:
            yield test_hub
