"""Screens a person can pair with, for when mDNS cannot find them (the phone on another network, or mDNS
blocked): ``GET /api/v1/screens`` lists the screen devices of the caller's homes with their presence.

On one network the screens announce themselves with mDNS/DNS-SD (``_tosplus._tcp.local.``, TXT ``id``,
``product``, ``d`` = pairing discriminator); that is the SDK's side (``tosplus.sdk.discovery``). The
discriminator a screen announces is the one it gave the hub in its session hello, so a phone can match what it
heard on the network with what the hub lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tosplus.core.tokens import Principal

if TYPE_CHECKING:
    from tosplus.app import Hub


def screens_for(hub: Hub, caller: Principal) -> list[dict[str, Any]]:
    """The screen devices in homes that the caller may see, with presence and whether they may pair."""
    registry, homes, sessions = hub.registry, hub.people.homes, hub.sessions
    visible = hub.people.access.visible_devices(caller)
    candidates = visible if visible is not None else set(homes.device_home)
    items = []
    for device_id in sorted(candidates):
        device = registry.devices.get(device_id)
        home_id = homes.device_home.get(device_id)
        if device is None or home_id is None or not registry.products[device.product_id].model.screen:
            continue
        screen = sessions.screens.get(device_id)
        ready = screen is not None and screen.link is not None
        refusal = sessions.refusal(caller.user_id, device_id) if caller.user_id else None
        items.append(
            {
                "id": device_id,
                "name": device.name,
                "product_id": device.product_id,
                "home_id": home_id,
                "room_id": homes.homes[home_id].devices.get(device_id),
                "online": ready or hub.presence.is_online(device_id),
                "session_ready": ready,
                "pairing_open": screen is not None and screen.window is not None,
                "discriminator": screen.discriminator if screen is not None else None,
                "players": len(screen.slots) if screen is not None else 0,
                "max_players": screen.max_players if screen is not None else sessions.max_players,
                "may_control": caller.user_id is not None and refusal is None,
            }
        )
    return items
