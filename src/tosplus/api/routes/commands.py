"""``/devices/{id}/commands``: ask a device to act and get its answer; history; cancel."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from tosplus.api.deps import ControlDevice, HubDep, ReadDevice, client_address
from tosplus.api.schemas import CommandCreate
from tosplus.core.commands import FINAL

router = APIRouter(tags=["commands"])


@router.post("/devices/{device_id}/commands", response_class=Response)
async def send_command(
    device_id: str, body: CommandCreate, hub: HubDep, caller: ControlDevice, request: Request
) -> Response:
    """200 with the final state when the device answered (or failed/timed out); 202 while it is pending."""
    command = await hub.commands.send(
        device_id,
        body.name,
        body.params,
        timeout_s=body.timeout_s,
        persistent=body.persistent,
        expires_in_s=body.expires_in_s,
        wait=body.wait,
    )
    await hub.people.audit.record(
        caller,
        "device.command",
        home_id=hub.people.homes.device_home.get(device_id),
        device_id=device_id,
        detail={"command_id": command.id, "name": body.name, "params": body.params, "state": command.state},
        ip=client_address(request),
    )
    # Serialised here, not by FastAPI: this is the hot path of every command (see BENCHMARKS.md).
    return Response(
        orjson.dumps(command.to_json()),
        status_code=200 if command.state in FINAL else 202,
        media_type="application/json",
    )


@router.get("/devices/{device_id}/commands")
async def command_history(
    device_id: str,
    hub: HubDep,
    _: ReadDevice,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, description="created_at of the last command of the previous page"),
) -> dict[str, Any]:
    hub.registry.device(device_id)
    return {"items": [c.to_json() for c in await hub.commands.history(device_id, limit, before)]}


@router.get("/devices/{device_id}/commands/{command_id}")
async def get_command(device_id: str, command_id: str, hub: HubDep, _: ReadDevice) -> dict[str, Any]:
    command = await hub.commands.get(command_id)
    if command.device_id != device_id:
        hub.registry.device(device_id)
        from tosplus.errors import NotFound

        raise NotFound(f"command '{command_id}' does not exist")
    return command.to_json()


@router.post("/devices/{device_id}/commands/{command_id}/cancel")
async def cancel_command(device_id: str, command_id: str, hub: HubDep, _: ControlDevice) -> dict[str, Any]:
    return (await hub.commands.cancel(device_id, command_id)).to_json()
