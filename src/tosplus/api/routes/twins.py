"""``/devices/{id}/twin``: desired, reported and delta, with versions and ETags."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from tosplus.api.deps import ControlDevice, HubDep, ReadDevice, client_address
from tosplus.errors import InvalidInput

router = APIRouter(tags=["twins"])


def _etag(version: int) -> str:
    return f'"{version}"'


def _expected(if_match: str | None, version: int | None) -> int | None:
    if if_match is None:
        return version
    raw = if_match.strip().removeprefix("W/").strip('"')
    if raw == "*":
        return version
    if not raw.isdigit():
        raise InvalidInput('If-Match must be the ETag of the desired state, e.g. "3"')
    return int(raw)


@router.get("/devices/{device_id}/twin")
async def get_twin(device_id: str, hub: HubDep, _: ReadDevice, response: Response) -> dict[str, Any]:
    twin = await hub.twins.get(device_id)
    response.headers["ETag"] = _etag(twin.desired_version)
    return twin.to_json()


@router.patch("/devices/{device_id}/twin/desired")
async def patch_desired(
    device_id: str,
    hub: HubDep,
    caller: ControlDevice,
    request: Request,
    response: Response,
    patch: dict[str, Any] = Body(description="Properties to set; null removes one.", examples=[{"on": True}]),
    if_match: str | None = Header(default=None),
    version: int | None = Query(default=None, description="Expected desired version (alternative to If-Match)"),
) -> dict[str, Any]:
    twin = await hub.twins.patch_desired(device_id, patch, _expected(if_match, version))
    await hub.people.audit.record(
        caller,
        "device.desired",
        home_id=hub.people.homes.device_home.get(device_id),
        device_id=device_id,
        detail={"patch": patch, "version": twin.desired_version},
        ip=client_address(request),
    )
    response.headers["ETag"] = _etag(twin.desired_version)
    return twin.to_json()
