"""``/devices``: creating, listing, changing and deleting devices, their credentials and dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response

from tosplus.api.deps import (
    Caller,
    DeviceCredentials,
    FleetDevice,
    HubDep,
    Operator,
    ReadDevice,
    SeeDevice,
    client_address,
)
from tosplus.api.schemas import DeviceBulkCreate, DeviceCreate, DeviceUpdate, ProvisionRequest
from tosplus.core import dead_letters
from tosplus.core.registry import Device, NewCredentials
from tosplus.core.tokens import MANUFACTURER, Principal
from tosplus.errors import Forbidden
from tosplus.storage import tables as t

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["devices"])


def device_json(hub: Hub, device: Device, caller: Principal | None = None) -> dict[str, Any]:
    presence = hub.presence.state(device.id)
    home_id, room_id = hub.people.homes.room_of(device.id)
    # A maker sees whether its device is in use, never whose home it is in.
    place: dict[str, Any] = (
        {"bound": home_id is not None}
        if caller is not None and caller.role == MANUFACTURER
        else {"home_id": home_id, "room_id": room_id}
    )
    return {
        "id": device.id,
        "product_id": device.product_id,
        "name": device.name,
        "labels": device.labels,
        "enabled": device.enabled,
        "has_credentials": device.has_credentials,
        "created_at": device.created_at,
        "credentials_at": device.credentials_at,
        "online": presence.online,
        "last_seen": presence.last_seen,
        "presence_since": presence.since,
        **place,
    }


def credentials_json(hub: Hub, created: NewCredentials, caller: Principal | None = None) -> dict[str, Any]:
    return {**device_json(hub, created.device, caller), "secret": created.secret}


def _may_make(hub: Hub, caller: Principal, product_id: str) -> None:
    if not hub.people.access.may_manage_product(caller, hub.registry.product(product_id).manufacturer):
        raise Forbidden("only operators and the product's manufacturer can create its devices")


@router.post("/devices", status_code=201)
async def create_device(body: DeviceCreate, hub: HubDep, caller: Caller) -> dict[str, Any]:
    _may_make(hub, caller, body.product_id)
    (created,) = await hub.registry.create_devices(body.product_id, [(body.id, body.name, body.labels)])
    return credentials_json(hub, created, caller)


@router.post("/devices/bulk", status_code=201)
async def create_devices_in_bulk(body: DeviceBulkCreate, hub: HubDep, caller: Caller) -> dict[str, Any]:
    _may_make(hub, caller, body.product_id)
    prefix = body.name_prefix or body.product_id
    specs = [(None, f"{prefix}-{i + 1}", dict(body.labels)) for i in range(body.count)]
    created = await hub.registry.create_devices(body.product_id, specs)
    return {
        "devices": [{"id": c.device.id, "secret": c.secret, "name": c.device.name} for c in created],
        # An external Mosquitto takes minutes to add thousands of accounts; until then those devices are
        # refused by the broker. GET /hub shows how many are still pending.
        "broker_accounts_pending": hub.accounts.pending,
    }


@router.post("/provision", status_code=201, tags=["provisioning"])
async def provision(body: ProvisionRequest, hub: HubDep) -> dict[str, Any]:
    """Fleet provisioning: authenticated by the product's provisioning key, not a bearer token."""
    created = await hub.registry.provision(body.product_id, body.provisioning_key, body.serial)
    return {**credentials_json(hub, created), "mqtt": {"host": hub.mqtt_host, "port": hub.mqtt_port}}


@router.get("/devices")
async def list_devices(
    hub: HubDep,
    caller: Caller,
    product_id: str | None = None,
    home_id: str | None = None,
    online: bool | None = None,
    label: list[str] = Query(default=[], description="name=value; repeat to require several"),
    after: str | None = Query(default=None, description="id of the last device of the previous page"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    wanted = dict(item.split("=", 1) for item in label if "=" in item)
    visible = hub.people.access.visible_devices(caller)
    in_home = hub.people.homes.homes[home_id].devices if home_id in hub.people.homes.homes else None
    if home_id is not None and in_home is None:
        in_home = {}
    items = []
    for device_id in sorted(hub.registry.devices if visible is None else visible):
        if in_home is not None and device_id not in in_home:
            continue
        if after is not None and device_id <= after:
            continue
        device = hub.registry.devices[device_id]
        if product_id and device.product_id != product_id:
            continue
        if online is not None and hub.presence.is_online(device_id) != online:
            continue
        if any(device.labels.get(k) != v for k, v in wanted.items()):
            continue
        items.append(device_json(hub, device, caller))
        if len(items) == limit:
            break
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


@router.get("/devices/{device_id}")
async def get_device(device_id: str, hub: HubDep, caller: SeeDevice) -> dict[str, Any]:
    device = hub.registry.device(device_id)
    async with hub.engine.connect() as conn:
        count = (
            await conn.execute(sa.select(t.devices.c.dead_letter_count).where(t.devices.c.id == device_id))
        ).scalar()
    return {**device_json(hub, device, caller), "dead_letter_count": int(count or 0)}


@router.patch("/devices/{device_id}")
async def update_device(device_id: str, body: DeviceUpdate, hub: HubDep, caller: FleetDevice) -> dict[str, Any]:
    device = await hub.registry.update_device(device_id, name=body.name, labels=body.labels, enabled=body.enabled)
    return device_json(hub, device, caller)


@router.delete("/devices/{device_id}", status_code=204)
async def delete_device(device_id: str, hub: HubDep, _: FleetDevice) -> Response:
    await hub.registry.delete_device(device_id)
    return Response(status_code=204)


@router.post("/devices/{device_id}/credentials/rotate")
async def rotate_credentials(
    device_id: str, hub: HubDep, caller: DeviceCredentials, request: Request
) -> dict[str, Any]:
    created = await hub.registry.rotate_credentials(device_id)
    await _audit_credentials(hub, caller, device_id, "device.credentials.rotate", request)
    return credentials_json(hub, created, caller)


@router.post("/devices/{device_id}/credentials/revoke")
async def revoke_credentials(
    device_id: str, hub: HubDep, caller: DeviceCredentials, request: Request
) -> dict[str, Any]:
    device = await hub.registry.revoke_credentials(device_id)
    await _audit_credentials(hub, caller, device_id, "device.credentials.revoke", request)
    return device_json(hub, device, caller)


async def _audit_credentials(hub: Hub, caller: Principal, device_id: str, action: str, request: Request) -> None:
    home_id = hub.people.homes.device_home.get(device_id)
    await hub.people.audit.record(caller, action, home_id=home_id, device_id=device_id, ip=client_address(request))


@router.get("/devices/{device_id}/dead-letters")
async def list_dead_letters(
    device_id: str,
    hub: HubDep,
    _: ReadDevice,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = None,
) -> dict[str, Any]:
    items, total = await dead_letters.list_for(hub.engine, device_id, limit, before)
    return {"items": items, "total": total}


@router.get("/dead-letters/unknown-devices")
async def list_unknown_device_letters(
    hub: HubDep, _: Operator, limit: int = Query(default=100, ge=1, le=1000), before: int | None = None
) -> dict[str, Any]:
    """Messages whose topic named no known device."""
    items, total = await dead_letters.list_for(hub.engine, None, limit, before)
    return {"items": items, "total": total}
