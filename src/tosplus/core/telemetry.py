"""The time-series store: raw values, latest values, ranges, aggregates and retention."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.errors import InvalidInput
from tosplus.storage import tables as t

Aggregate = Literal["avg", "min", "max", "sum", "count"]
AGGREGATES: tuple[str, ...] = ("avg", "min", "max", "sum", "count")
MAX_POINTS = 10_000

# (device_id, key, ts, num, txt)
Row = tuple[str, str, int, float | None, str | None]


def encode_value(value: Any) -> tuple[float | None, str | None]:
    """A value as its (num, txt) columns: numbers in num; booleans in both (0/1 and JSON); the rest as JSON."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, int | float):
        return float(value), None
    return None, orjson.dumps(value).decode()


def decode_value(num: float | None, txt: str | None) -> Any:
    if txt is not None:
        return orjson.loads(txt)
    if num is not None and num.is_integer() and abs(num) < 2**53:
        return int(num)
    return num


@dataclass(frozen=True, slots=True)
class Point:
    ts: int
    value: Any


class TelemetryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    async def write(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        """Append values and move the latest values forward, inside the caller's transaction."""
        if not rows:
            return
        latest: dict[tuple[str, str], Row] = {}
        for row in rows:
            known = latest.get((row[0], row[1]))
            if known is None or row[2] >= known[2]:
                latest[(row[0], row[1])] = row
        # Latest values first: this statement also opens the transaction that the COPY below must be part of
        # (the driver's COPY alone would run outside it and commit on its own). Sorted, so that writers in
        # several processes take the rows' locks in one order and cannot deadlock each other.
        await self._upsert_latest(conn, [latest[k] for k in sorted(latest)])
        if self.dialect == "postgresql":
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None and driver.is_in_transaction()
            await driver.copy_records_to_table(
                "telemetry", records=rows, columns=["device_id", "key", "ts", "num", "txt"]
            )
        else:
            await conn.execute(
                sa.insert(t.telemetry),
                [{"device_id": d, "key": k, "ts": ts, "num": n, "txt": x} for d, k, ts, n, x in rows],
            )

    async def _upsert_latest(self, conn: AsyncConnection, rows: Iterable[Row]) -> None:
        values = [{"device_id": d, "key": k, "ts": ts, "num": n, "txt": x} for d, k, ts, n, x in rows]
        insert = (
            postgresql.insert(t.telemetry_latest) if self.dialect == "postgresql" else sqlite.insert(t.telemetry_latest)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["device_id", "key"],
            set_={"ts": insert.excluded.ts, "num": insert.excluded.num, "txt": insert.excluded.txt},
            where=insert.excluded.ts >= t.telemetry_latest.c.ts,
        )
        await conn.execute(stmt, values)

    async def latest(self, device_id: str) -> dict[str, dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(t.telemetry_latest).where(t.telemetry_latest.c.device_id == device_id)
            )
            return {r.key: {"ts": r.ts, "value": decode_value(r.num, r.txt)} for r in result}

    async def keys(self, device_id: str) -> list[str]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(t.telemetry_latest.c.key).where(t.telemetry_latest.c.device_id == device_id)
            )
            return sorted(r[0] for r in result)

    async def range(
        self, device_id: str, key: str, start: int, end: int, limit: int = MAX_POINTS, order: str = "asc"
    ) -> list[Point]:
        col = t.telemetry.c
        query = (
            sa.select(col.ts, col.num, col.txt)
            .where(col.device_id == device_id, col.key == key, col.ts >= start, col.ts < end)
            .order_by(col.ts.asc() if order == "asc" else col.ts.desc())
            .limit(min(limit, MAX_POINTS))
        )
        async with self.engine.connect() as conn:
            return [Point(r.ts, decode_value(r.num, r.txt)) for r in await conn.execute(query)]

    async def aggregate(
        self, device_id: str, key: str, start: int, end: int, agg: str, interval_ms: int
    ) -> list[dict[str, Any]]:
        if agg not in AGGREGATES:
            raise InvalidInput(f"agg must be one of {list(AGGREGATES)}")
        if interval_ms < 1000:
            raise InvalidInput("interval must be at least 1s")
        if (end - start) // interval_ms > MAX_POINTS:
            raise InvalidInput(f"that range and interval make more than {MAX_POINTS} buckets; widen the interval")
        col = t.telemetry.c
        bucket = (col.ts - start) // interval_ms
        value = getattr(sa.func, agg)(col.num)
        query = (
            sa.select(bucket.label("b"), value.label("v"), sa.func.count(col.num).label("n"))
            .where(col.device_id == device_id, col.key == key, col.ts >= start, col.ts < end)
            .group_by(sa.text("b"))
            .order_by(sa.text("b"))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {"ts": start + int(r.b) * interval_ms, "value": (int(r.v) if agg == "count" else float(r.v)), "count": r.n}
            for r in rows
            if r.v is not None
        ]

    async def purge_before(self, device_ids: Sequence[str], before_ms: int) -> int:
        """Retention: drop raw values older than ``before_ms`` for these devices."""
        if not device_ids:
            return 0
        deleted = 0
        async with self.engine.begin() as conn:
            for chunk_start in range(0, len(device_ids), 500):
                chunk = device_ids[chunk_start : chunk_start + 500]
                result = await conn.execute(
                    sa.delete(t.telemetry).where(t.telemetry.c.device_id.in_(chunk), t.telemetry.c.ts < before_ms)
                )
                deleted += result.rowcount or 0
        return deleted
