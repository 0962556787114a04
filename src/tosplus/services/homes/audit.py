"""The audit log: who did what to which home or device, when and from where. Kept in the database.

Writes share transactions through group commit, so auditing every command costs no extra commit under load.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.core.tokens import Principal
from tosplus.services.homes import tables as t
from tosplus.storage.group_commit import GroupCommit

# Also for services that write audit rows in their own transactions (an executemany of audit_row()s).
INSERT = sa.insert(t.audit_log)


class Where(TypedDict, total=False):
    """What an audit row says besides who did what: where, to what, and the details."""

    home_id: str | None
    device_id: str | None
    detail: dict[str, Any] | None
    ip: str | None
    actor_label: str | None  # the actor's name when there is no principal (e.g. "payment counter")


def audit_row(actor: Principal | None, action: str, **where: Unpack[Where]) -> dict[str, Any]:
    """One row of the audit log."""
    return {
        "at": now_ms(),
        "actor_id": actor.user_id or actor.id if actor else None,
        "actor": where.get("actor_label") or (actor.name if actor else "hub"),
        "home_id": where.get("home_id"),
        "device_id": where.get("device_id"),
        "action": action,
        "detail": where.get("detail"),
        "ip": where.get("ip"),
    }


class Audit:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writes = GroupCommit(engine)

    async def record(self, actor: Principal | None, action: str, **where: Unpack[Where]) -> None:
        await self._writes.execute(INSERT, audit_row(actor, action, **where))

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
