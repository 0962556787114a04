"""The time-series store writes a batch whole or not at all, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.hubs import postgres_database
from tosplus.core.telemetry import TelemetryStore
from tosplus.storage import tables as t
from tosplus.storage.engine import open_database


@contextlib.asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        async with postgres_database() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_failed_batch_leaves_nothing_and_a_retry_writes_once(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url:
        engine = await open_database(url)
        try:
            store = TelemetryStore(engine)
            rows = [("dev-a", "power_w", 1_000 + i, float(i), None) for i in range(50)]
            with pytest.raises(RuntimeError):
                async with engine.begin() as conn:
                    await store.write(conn, rows)
                    raise RuntimeError("the batch fails after the values were written")
            async with engine.connect() as conn:
                count = (await conn.execute(sa.select(sa.func.count()).select_from(t.telemetry))).scalar()
                latest = (await conn.execute(sa.select(sa.func.count()).select_from(t.telemetry_latest))).scalar()
            assert (count, latest) == (0, 0)
            async with engine.begin() as conn:
                await store.write(conn, rows)
            points = await store.range("dev-a", "power_w", 0, 10_000)
            assert [p.value for p in points] == list(range(50))
            assert (await store.latest("dev-a"))["power_w"] == {"ts": 1_049, "value": 49}
        finally:
            await engine.dispose()
