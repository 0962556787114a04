"""Dependencies by type: the hub, the caller, and the caller's right to a device.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, which costs a
thread hop per dependency per request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden, TosError, Unauthorized
from tosplus.services.homes.access import Need

if TYPE_CHECKING:
    from tosplus.app import Hub

_bearer = HTTPBearer(auto_error=False)


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated["Hub", Depends(get_hub)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    hub: Hub = request.app.state.hub
    return await hub.people.auth.verify(credentials.credentials)


Caller = Annotated[Principal, Depends(get_principal)]


async def websocket_principal(websocket: WebSocket, token: str | None) -> Principal | None:
    """Who opens this WebSocket: ``Authorization: Bearer`` or, where a browser cannot set headers, ``?token=``.
    None after closing it with 4401 when neither is valid."""
    header = websocket.headers.get("authorization", "")
    presented = header[7:] if header.lower().startswith("bearer ") else (token or "")
    try:
        principal: Principal = await websocket.app.state.hub.people.auth.verify(presented)
    except TosError:
        await websocket.close(code=4401, reason="a valid bearer token is required")
        return None
    return principal


def basic_credentials(header: str) -> tuple[str, str]:
    """``(user, password)`` of an ``Authorization: Basic`` header; empty strings when there is none or it is
    malformed (devices present their id and secret this way on WebSockets)."""
    if not header.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


async def require_operator(principal: Caller) -> Principal:
    if not principal.is_operator:
        raise Forbidden("this needs an operator (platform administrator)")
    return principal


Operator = Annotated[Principal, Depends(require_operator)]


def _device_access(need: Need) -> Callable[..., Awaitable[Principal]]:
    async def check(device_id: str, request: Request, principal: Caller) -> Principal:
        request.app.state.hub.people.access.require(principal, device_id, need)
        return principal

    return check


SeeDevice = Annotated[Principal, Depends(_device_access(Need.SEE))]
ReadDevice = Annotated[Principal, Depends(_device_access(Need.DATA))]
ControlDevice = Annotated[Principal, Depends(_device_access(Need.CONTROL))]
DeviceCredentials = Annotated[Principal, Depends(_device_access(Need.CREDENTIALS))]
FleetDevice = Annotated[Principal, Depends(_device_access(Need.FLEET))]
