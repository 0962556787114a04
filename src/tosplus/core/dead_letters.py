"""Dead letters: messages the hub refused, kept per device with the reason and the raw payload."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.storage import tables as t

KEEP_PAYLOAD_BYTES = 4096


def row(device_id: str | None, topic: str, reason: str, payload: bytes, at: int) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "topic": topic[:1024],
        "reason": reason[:1000],
        "payload": payload[:KEEP_PAYLOAD_BYTES],
        "size": len(payload),
        "received_at": at,
    }


def to_json(r: Any) -> dict[str, Any]:
    payload: bytes = r.payload
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "id": r.id,
        "device_id": r.device_id,
        "topic": r.topic,
        "reason": r.reason,
        "payload": text,
        "payload_base64": None if text is not None else base64.b64encode(payload).decode(),
        "size": r.size,
        "truncated": r.size > len(payload),
        "received_at": r.received_at,
    }


async def write(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(sa.insert(t.dead_letters), list(rows))
    counts: dict[str, int] = {}
    for r in rows:
        if r["device_id"] is not None:
            counts[r["device_id"]] = counts.get(r["device_id"], 0) + 1
    if counts:
        await conn.execute(
            sa.update(t.devices)
            .where(t.devices.c.id == sa.bindparam("_id"))
            .values(dead_letter_count=t.devices.c.dead_letter_count + sa.bindparam("_n")),
            [{"_id": d, "_n": n} for d, n in sorted(counts.items())],  # one lock order for every writer
        )


async def list_for(
    engine: AsyncEngine, device_id: str | None, limit: int = 100, before_id: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; ``device_id=None`` lists messages that named no known device."""
    c = t.dead_letters.c
    where = c.device_id == device_id if device_id is not None else c.device_id.is_(None)
    query = sa.select(t.dead_letters).where(where)
    if before_id is not None:
        query = query.where(c.id < before_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(c.id.desc()).limit(min(limit, 1000)))).all()
        if device_id is not None:
            total = (
                await conn.execute(sa.select(t.devices.c.dead_letter_count).where(t.devices.c.id == device_id))
            ).scalar() or 0
        else:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(t.dead_letters).where(where))).scalar()
    return [to_json(r) for r in rows], int(total or 0)


async def prune(engine: AsyncEngine, keep_per_device: int) -> int:
    """Keep only the newest ``keep_per_device`` dead letters of each device (and of unknown devices)."""
    c = t.dead_letters.c
    deleted = 0
    async with engine.begin() as conn:
        heavy = (
            await conn.execute(sa.select(c.device_id).group_by(c.device_id).having(sa.func.count() > keep_per_device))
        ).all()
        for (device_id,) in heavy:
            where = c.device_id == device_id if device_id is not None else c.device_id.is_(None)
            cutoff = (
                await conn.execute(sa.select(c.id).where(where).order_by(c.id.desc()).offset(keep_per_device).limit(1))
            ).scalar()
            if cutoff is not None:
                result = await conn.execute(sa.delete(t.dead_letters).where(where, c.id <= cutoff))
                deleted += result.rowcount or 0
    return deleted
