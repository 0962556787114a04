"""``/live``: a WebSocket stream of the hub's events, filtered by device and type.

Authenticate with ``Authorization: Bearer`` or, where a browser cannot set headers, ``?token=``. A caller
receives only events of devices it may see (operators: all, including events that name no device). A client too
slow to keep up gets ``{"type": "lagged", "dropped": n}`` instead of the hub buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from tosplus.api.deps import websocket_principal
from tosplus.core.bus import Event
from tosplus.services.homes.access import Need

router = APIRouter(tags=["live"])
# What a manufacturer may follow of a device in someone's home: whether it is connected, nothing it says.
_FLEET_EVENTS = {"presence": Need.SEE, "device": Need.SEE}
QUEUE = 10_000


@router.websocket("/live")
async def live(
    websocket: WebSocket,
    device_id: list[str] = Query(default=[]),
    type: list[str] = Query(default=[], description="telemetry, twin, presence, command, dead_letter, event"),
    token: str | None = None,
) -> None:
    hub = websocket.app.state.hub
    principal = await websocket_principal(websocket, token)
    if principal is None:
        return
    await websocket.accept()
    devices = set(device_id)
    types = {t for item in type for t in item.split(",") if t}
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE)
    dropped = 0

    access = hub.people.access

    def on_event(event: Event) -> None:
        nonlocal dropped
        if devices and event.device_id not in devices:
            return
        if types and event.type not in types:
            return
        # Asked per event, so a membership that ends or a device that leaves the home stops the flow at once.
        if not principal.is_operator and (
            event.device_id is None
            or not access.can(principal, event.device_id, _FLEET_EVENTS.get(event.type, Need.DATA))
        ):
            return
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            dropped += 1

    unsubscribe = hub.bus.listen("*", on_event)
    receiver = asyncio.create_task(_drain_incoming(websocket))
    try:
        await websocket.send_json({"type": "hello", "devices": sorted(devices), "types": sorted(types)})
        while not receiver.done():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            if dropped:
                await websocket.send_json({"type": "lagged", "dropped": dropped})
                dropped = 0
            await websocket.send_json(getter.result().to_json())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
