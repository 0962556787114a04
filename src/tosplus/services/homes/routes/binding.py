"""Devices in homes: binding with a code, moving between rooms, unbinding; sticker codes for makers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tosplus.api.deps import Caller, FleetDevice, HubDep, client_address
from tosplus.api.routes.devices import device_json
from tosplus.errors import NotFound
from tosplus.services.homes.homes import MEMBER, OWNER
from tosplus.services.homes.routes.homes import with_role
from tosplus.services.homes.schemas import Bind, BindingCodeCreate, DevicePlace

router = APIRouter(tags=["binding"])


@router.post("/homes/{home_id}/devices/bind", status_code=201)
async def bind(home_id: str, body: Bind, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER, MEMBER)
    client = client_address(request)
    device_id = await hub.people.binding.claim(home_id, body.code, body.room_id, caller.id, client)
    if body.name:
        await hub.registry.update_device(device_id, name=body.name)
    await hub.people.audit.record(
        caller, "device.bind", home_id=home_id, device_id=device_id, detail={"room_id": body.room_id}, ip=client
    )
    return device_json(hub, hub.registry.devices[device_id], caller)


def _device_in(hub: Any, home_id: str, device_id: str) -> None:
    if hub.people.homes.device_home.get(device_id) != home_id:
        raise NotFound(f"no device '{device_id}' in this home")


@router.patch("/homes/{home_id}/devices/{device_id}")
async def place(
    home_id: str, device_id: str, body: DevicePlace, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER, MEMBER)
    _device_in(hub, home_id, device_id)
    changes = body.model_dump(exclude_unset=True)
    if "room_id" in changes:
        await hub.people.homes.move_device(home_id, device_id, body.room_id)
    if body.name:
        await hub.registry.update_device(device_id, name=body.name)
    await hub.people.audit.record(
        caller, "device.update", home_id=home_id, device_id=device_id, detail=changes, ip=client_address(request)
    )
    return device_json(hub, hub.registry.devices[device_id], caller)


@router.post("/homes/{home_id}/devices/{device_id}/unbind")
async def unbind(home_id: str, device_id: str, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    """The device leaves the home; its credentials are revoked, its twin emptied and its history erased."""
    with_role(hub, caller, home_id, OWNER)
    _device_in(hub, home_id, device_id)
    await hub.people.binding.unbind(device_id)
    await hub.people.audit.record(
        caller, "device.unbind", home_id=home_id, device_id=device_id, ip=client_address(request)
    )
    return device_json(hub, hub.registry.devices[device_id], caller)


@router.post("/devices/{device_id}/binding-codes", status_code=201)
async def issue_sticker_code(
    device_id: str, body: BindingCodeCreate, hub: HubDep, caller: FleetDevice, request: Request
) -> dict[str, Any]:
    """A code to print on the device's sticker (operators and the device's maker)."""
    issued = await hub.people.binding.issue(device_id, kind="sticker", valid_s=int(body.valid_days * 86400))
    await hub.people.audit.record(
        caller, "device.binding_code", device_id=device_id, detail={"kind": "sticker"}, ip=client_address(request)
    )
    return issued.to_json(with_qr=True)
