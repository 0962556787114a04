"""Decoding device payloads into checked Python values (shared by MQTT, HTTP and CoAP).

Every function raises :class:`InvalidInput` with a sentence a device developer can act on.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tosplus.errors import InvalidInput

# A timestamp more than this far in the future is a device clock gone wrong, not data.
MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_BATCH = 10_000


def decode_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"payload is not valid JSON ({exc.msg} at byte {exc.pos})") from None


def telemetry_points(doc: Any, now_ms: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """A telemetry payload as ``[(ts_ms, values), ...]``.

    Accepted shapes: ``{"temp": 21.5}``, ``{"ts": 1700000000000, "values": {...}}``, or an array of either.
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if isinstance(doc, list):
        if not doc:
            raise InvalidInput("telemetry batch is empty")
        if len(doc) > MAX_BATCH:
            raise InvalidInput(f"telemetry batch has {len(doc)} entries, more than {MAX_BATCH}")
        return [_point(item, now, f"[{i}]") for i, item in enumerate(doc)]
    return [_point(doc, now, "")]


def _point(item: Any, now: int, where: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(item, dict):
        raise InvalidInput(f"telemetry{where} must be a JSON object")
    if "values" in item:
        values = item["values"]
        if not isinstance(values, dict):
            raise InvalidInput(f"telemetry{where}.values must be a JSON object")
        extra = set(item) - {"ts", "values"}
        if extra:
            raise InvalidInput(f"telemetry{where} has unexpected keys beside ts and values: {sorted(extra)}")
        ts = item.get("ts", now)
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise InvalidInput(f"telemetry{where}.ts must be an integer of milliseconds since the epoch")
        if ts < 0 or ts > now + MAX_FUTURE_MS:
            raise InvalidInput(f"telemetry{where}.ts {ts} is not a plausible time in milliseconds")
    else:
        values, ts = item, now
    if not values:
        raise InvalidInput(f"telemetry{where} has no values")
    return ts, values


def object_payload(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc
