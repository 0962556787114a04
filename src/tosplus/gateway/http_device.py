"""The HTTP device API (``/device/v1``) for devices that cannot hold a connection.

Same payloads as MQTT, HTTP Basic authentication with username = device id and password = device secret.
``202`` means stored; a refused message gets a problem document with the reason (and is a dead letter).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from tosplus.api.deps import HubDep
from tosplus.core.registry import Device
from tosplus.errors import Unauthorized
from tosplus.gateway import device_api

router = APIRouter(tags=["device API"])
_basic = HTTPBasic(auto_error=False, realm="tosplus-device")


async def authenticated_device(
    hub: HubDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> Device:
    if credentials is None:
        raise Unauthorized("device credentials are required (HTTP Basic: device id and secret)")
    return hub.registry.check_device_credentials(credentials.username, credentials.password)


DeviceDep = Annotated[Device, Depends(authenticated_device)]


async def _submit(hub: Any, device: Device, kind: str, request: Request, name: str = "") -> Response:
    refused = await device_api.submit(hub, device.id, kind, await request.body(), name)
    if refused is not None:
        raise refused
    return Response(status_code=202)


@router.post("/telemetry", status_code=202)
async def telemetry(request: Request, hub: HubDep, device: DeviceDep) -> Response:
    return await _submit(hub, device, "telemetry", request)


@router.post("/twin/reported", status_code=202)
async def reported(request: Request, hub: HubDep, device: DeviceDep) -> Response:
    return await _submit(hub, device, "twin/reported", request)


@router.post("/events/{name}", status_code=202)
async def event(name: str, request: Request, hub: HubDep, device: DeviceDep) -> Response:
    return await _submit(hub, device, "events", request, name)


@router.post("/status", status_code=202)
async def status(request: Request, hub: HubDep, device: DeviceDep) -> Response:
    return await _submit(hub, device, "status", request)


@router.get("/twin/desired")
async def desired(hub: HubDep, device: DeviceDep) -> dict[str, Any]:
    return await device_api.desired(hub, device.id)


@router.get("/commands")
async def commands(hub: HubDep, device: DeviceDep) -> dict[str, Any]:
    """Commands to act on now; answer each at ``POST /device/v1/commands/{request_id}/response``."""
    return {"items": await device_api.pending_commands(hub, device.id)}


@router.post("/commands/{request_id}/response", status_code=202)
async def command_response(request_id: str, request: Request, hub: HubDep, device: DeviceDep) -> Response:
    return await _submit(hub, device, "response", request, request_id)


@router.post("/binding-code", status_code=201)
async def binding_code(hub: HubDep, device: DeviceDep) -> dict[str, Any]:
    """A fresh binding code for a screen device to show (``bind/request`` over MQTT)."""
    issued = await hub.people.binding.issue(device.id)
    return dict(issued.to_json(with_qr=True))


@router.post("/payment-token")
async def payment_token(hub: HubDep, device: DeviceDep) -> dict[str, Any]:
    """The device's payment token number and pay-code key, once its owner enabled payment on it."""
    credentials: dict[str, Any] = hub.payments.device_credentials(device.id)
    return credentials


@router.post("/payment-activation", status_code=201)
async def payment_activation(hub: HubDep, device: DeviceDep) -> dict[str, Any]:
    """A code (with its ``tosplus:pay:`` uri and QR code) for a person to scan to enable payment on this device
    (``pay/activate/request`` over MQTT); 409 when the device is in no home or payment is enabled already."""
    issued = await hub.activations.issue(device.id)
    return dict(issued.to_json(with_qr=True))
