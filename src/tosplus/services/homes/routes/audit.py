"""``/homes/{id}/audit`` for the home's owners and ``/audit`` for operators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from tosplus.api.deps import Caller, HubDep, Operator
from tosplus.services.homes.homes import OWNER
from tosplus.services.homes.routes.homes import with_role

router = APIRouter(tags=["audit"])


@router.get("/homes/{home_id}/audit")
async def home_audit(
    home_id: str,
    hub: HubDep,
    caller: Caller,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, description="id of the last entry of the previous page"),
) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER)
    return {"items": await hub.people.audit.list(home_id=home_id, before=before, limit=limit)}


@router.get("/audit")
async def all_audit(
    hub: HubDep,
    _: Operator,
    home_id: str | None = None,
    device_id: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = None,
) -> dict[str, Any]:
    return {"items": await hub.people.audit.list(home_id=home_id, device_id=device_id, before=before, limit=limit)}
