"""The audit log: who did what to which home or device, when and from where. Kept in the database.

Writes share transactions through group commit, so auditing every command costs no extra commit under load.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.core.tokens import Principal
from tosplus.services.homes import tables as t
from tosplus.storage.group_commit import GroupCommit

_INSERT = sa.insert(t.audit_log)


class Audit:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writes = GroupCommit(engine)

    async def record(
        self,
        actor: Principal | None,
        action: str,
        *,
        home_id: str | None = None,
        device_id: str | None = None,
        detail: dict[str, Any] | None = None,
        ip: str | None = None,
        actor_label: str | None = None,
    ) -> None:
        await self._writes.execute(
            _INSERT,
            {
                "at": now_ms(),
                "actor_id": actor.user_id or actor.id if actor else None,
                "actor": actor_label or (actor.name if actor else "hub"),
                "home_id": home_id,
                "device_id": device_id,
                "action": action,
                "detail": detail,
                "ip": ip,
            },
        )

    async def list(
        self,
        *,
        home_id: str | None = None,
        device_id: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        query = sa.select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
        if home_id is not None:
            query = query.where(t.audit_log.c.home_id == home_id)
        if device_id is not None:
            query = query.where(t.audit_log.c.device_id == device_id)
        if before is not None:
            query = query.where(t.audit_log.c.id < before)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]
