"""One place that turns a device's request over HTTP or CoAP into the same message an MQTT device sends.

Both gateways authenticate the device, name the topic it would have published to, and hand the payload to
ingest; they then answer with what ingest decided, so the device learns at once why a message was refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tosplus.core.commands import pending_for
from tosplus.core.ids import now_ms
from tosplus.errors import TosError
from tosplus.gateway import topics

if TYPE_CHECKING:
    from tosplus.app import Hub


def topic_for(device_id: str, kind: str, name: str = "") -> str:
    if kind == "telemetry":
        return topics.telemetry(device_id)
    if kind == "twin/reported":
        return topics.reported(device_id)
    if kind == "status":
        return topics.status(device_id)
    if kind == "events":
        return topics.event(device_id, name)
    if kind == "response":
        return topics.command_response(device_id, name)
    raise ValueError(kind)


async def submit(hub: Hub, device_id: str, kind: str, payload: bytes, name: str = "") -> TosError | None:
    return await hub.ingest.handle(topic_for(device_id, kind, name), payload)


async def desired(hub: Hub, device_id: str) -> dict[str, Any]:
    twin = await hub.twins.get(device_id)
    return {"version": twin.desired_version, "state": twin.desired, "delta": twin.delta}


async def pending_commands(hub: Hub, device_id: str) -> list[dict[str, Any]]:
    hub.presence.seen(device_id, now_ms())  # polling is a sign of life
    return [
        {"request_id": c.id, "name": c.name, "params": c.params if c.params is not None else {}}
        for c in await pending_for(hub.commands, device_id)
    ]
