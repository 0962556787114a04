"""Hubs for the scene tests: ``hub`` (embedded broker + SQLite) and ``any_hub`` (that, then Mosquitto + PostgreSQL).

Kept here rather than imported, so these tests do not depend on where other test packages keep theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hubs import HubUnderTest, postgres_database, running_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    async with running_hub(tmp_path) as test_hub:
        yield test_hub


@pytest.fixture(params=["embedded+sqlite", "mosquitto+postgresql"])
async def any_hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    """Both deployments: a scene must behave the same on each."""
    if request.param == "embedded+sqlite":
        async with running_hub(tmp_path) as test_hub:
            yield test_hub
        return
    from tests.support.mosquitto import running_mosquitto

    with running_mosquitto(tmp_path / "mosquitto") as broker:
        async with (
            postgres_database() as url,
            running_hub(tmp_path / "hub", database_url=url, broker_url=broker.url) as test_hub,
        ):
            yield test_hub
