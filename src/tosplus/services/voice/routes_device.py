"""A device's microphone: ``WebSocket /voice/device?language=&engine=&speak=``.

A watch, a TV remote or a speaker streams what its person says, signed in with its own credentials (HTTP Basic
on the upgrade request, as the screen's session socket). The request is carried out in the device's home with
the permissions of the person who bound the device — the person it belongs to — so a device never does more
than that person may, and the audit log names them. A device in no home, or whose person has left the home, is
refused (4403) with the reason. The protocol after the upgrade is the push-to-talk stream's
(:mod:`.streaming`); the run's events also reach the live stream as the device's ``voice`` events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import APIRouter, Query, WebSocket

from tosplus.api.deps import basic_credentials
from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden
from tosplus.services.homes import tables as homes_tables
from tosplus.services.homes.auth import principal_of
from tosplus.services.voice.routes_audio import home_choices
from tosplus.services.voice.streaming import serve_stream

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["voice"])
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN = 4401, 4403


async def speaker_of(hub: Hub, device_id: str) -> tuple[Principal, str]:
    """(the person a device speaks for, its home): the person who bound it, while they are in its home."""
    home_id, _room = hub.people.homes.room_of(device_id)
    if home_id is None:
        raise Forbidden("this device belongs to no home: bind it to a home before talking to it")
    async with hub.engine.connect() as conn:
        bound_by = (
            await conn.execute(
                sa.select(homes_tables.device_homes.c.bound_by).where(
                    homes_tables.device_homes.c.device_id == device_id
                )
            )
        ).scalar()
    user = hub.people.accounts.users.get(bound_by or "")
    member = hub.people.homes.membership(home_id, bound_by) if bound_by else None
    if user is None or member is None:
        raise Forbidden("the person who bound this device is no longer in its home: bind it again")
    return principal_of(user), home_id


@router.websocket("/voice/device")
async def device_voice(
    websocket: WebSocket,
    language: str | None = Query(default=None, max_length=16),
    engine: str | None = Query(default=None, max_length=32),
    speak: bool | None = None,
) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()  # then close with a code and a reason the device can show (a refused upgrade has none)
    device_id, secret = basic_credentials(websocket.headers.get("authorization", ""))
    if not device_id or not hub.registry.authenticate(device_id, secret):
        await websocket.close(CLOSE_UNAUTHORIZED, "unknown device, wrong secret, or device disabled")
        return
    try:
        caller, home_id = await speaker_of(hub, device_id)
    except Forbidden as exc:
        await websocket.close(CLOSE_FORBIDDEN, exc.detail)
        return
    language, engine, speak = await home_choices(hub, home_id, language, engine, speak)
    await serve_stream(
        websocket, hub, caller, home_id, language=language, engine=engine, speak=speak, device_id=device_id
    )
