"""``/devices/{id}/telemetry``: latest values, ranges and aggregates."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from tosplus.api.deps import HubDep, ReadDevice
from tosplus.core.ids import now_ms
from tosplus.errors import InvalidInput

router = APIRouter(tags=["telemetry"])
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1}


def parse_time(value: str | None, default: int, name: str) -> int:
    """Milliseconds since the epoch, an ISO 8601 time, or a duration back from now (``-1h``)."""
    if value is None or value == "":
        return default
    if value.lstrip("-").isdigit() and not value.startswith("-"):
        return int(value)
    if value.startswith("-"):
        return now_ms() - parse_duration(value[1:], name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be milliseconds, an ISO 8601 time or -<duration> like -1h") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. Z or +08:00)")
    return int(parsed.timestamp() * 1000)


def parse_duration(value: str, name: str) -> int:
    match = _DURATION.match(value.strip())
    if not match:
        raise InvalidInput(f"{name} must be a duration like 30s, 5m, 1h or 1d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@router.get("/devices/{device_id}/telemetry/latest")
async def latest(device_id: str, hub: HubDep, _: ReadDevice) -> dict[str, Any]:
    hub.registry.device(device_id)
    return {"device_id": device_id, "values": await hub.telemetry.latest(device_id)}


@router.get("/devices/{device_id}/telemetry")
async def query(
    device_id: str,
    hub: HubDep,
    _: ReadDevice,
    key: str = Query(description="Property name"),
    from_: str | None = Query(default=None, alias="from", description="Start (ms, ISO 8601, or -1h); default -1h"),
    to: str | None = Query(default=None, description="End, exclusive; default now"),
    agg: str | None = Query(default=None, description="avg, min, max, sum or count"),
    interval: str | None = Query(default=None, description="Bucket size for agg, e.g. 1m (default 1m)"),
    limit: int = Query(default=1000, ge=1, le=10_000),
    order: str = Query(default="asc", pattern="^(asc|desc)$"),
) -> dict[str, Any]:
    hub.registry.device(device_id)
    now = now_ms()
    end = parse_time(to, now + 1, "to")
    start = parse_time(from_, now - 3_600_000, "from")
    if start >= end:
        raise InvalidInput("from must be before to")
    if agg is None:
        points = await hub.telemetry.range(device_id, key, start, end, limit, order)
        return {
            "device_id": device_id,
            "key": key,
            "from": start,
            "to": end,
            "points": [{"ts": p.ts, "value": p.value} for p in points],
        }
    step = parse_duration(interval or "1m", "interval")
    buckets = await hub.telemetry.aggregate(device_id, key, start, end, agg, step)
    return {
        "device_id": device_id,
        "key": key,
        "from": start,
        "to": end,
        "agg": agg,
        "interval_ms": step,
        "points": buckets,
    }
