"""Finding the TV: mDNS/DNS-SD on the local network (here the loopback interface), or the hub's list."""

from __future__ import annotations

import socket

import pytest

from tests.services.sessions.conftest import LivingRoom, phone
from tests.support.hubs import HubUnderTest
from tosplus.sdk.discovery import SERVICE_TYPE, browse_screens
from tosplus.sim.screen import SimScreen


def _multicast_on_loopback() -> str | None:
    """Why mDNS cannot run here, or None when it can (a multicast socket joins 224.0.0.251 on 127.0.0.1)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1"),
        )
    except OSError as exc:
        return f"multicast is not available on the loopback interface: {exc.strerror}"
    finally:
        sock.close()
    return None


async def test_the_phone_finds_the_tv_with_mdns(hub: HubUnderTest) -> None:
    why = _multicast_on_loopback()
    if why:
        pytest.skip(why)
    tv = await hub.create_device("smart-tv")
    async with SimScreen(
        tv["id"], tv["secret"], str(hub.api.base_url), name="Living room TV", announce=True, interfaces=["127.0.0.1"]
    ) as screen:
        found = await browse_screens(2.0, interfaces=["127.0.0.1"])
        mine = [s for s in found if s.device_id == tv["id"]]
        assert len(mine) == 1, found
        (nearby,) = mine
        assert nearby.product == "smart-tv" and nearby.name == "Living room TV"
        assert nearby.discriminator == screen.link.discriminator and 0 <= nearby.discriminator < 4096
        assert nearby.hub == str(hub.api.base_url) and "127.0.0.1" in nearby.addresses
        assert nearby.instance == f"{tv['id']}.{SERVICE_TYPE}"
        assert await browse_screens(1.0, interfaces=["127.0.0.1"], product="fridge") == []


async def test_without_mdns_the_hub_lists_the_screens_of_my_homes(living_room: LivingRoom) -> None:
    room = living_room
    await room.hub.create_device("smart-tv")  # in no home: nobody's to list
    light = await room.hub.create_device("light")
    from tests.support.people import sticker_code

    await room.owner.bind(room.home["id"], await sticker_code(room.hub, light["id"]))
    listed = await room.owner.api.get("/api/v1/screens")
    assert listed.status_code == 200
    (tv,) = listed.json()["items"]
    assert (
        tv["id"] == room.tv["id"] and tv["home_id"] == room.home["id"] and tv["room_id"] == room.home["rooms"][0]["id"]
    )
    assert tv["session_ready"] is True and tv["pairing_open"] is False and tv["may_control"] is True
    assert tv["discriminator"] == room.screen.link.discriminator and tv["players"] == 0 and tv["max_players"] == 8
    await room.code()
    listed = await room.owner.api.get("/api/v1/screens")
    assert listed.json()["items"][0]["pairing_open"] is True
    paired = await phone(room.hub, room.owner).pair(tv["id"], code=room.screen.shown.code)  # type: ignore[union-attr]
    assert paired.slot == 1
    listed = await room.owner.api.get("/api/v1/screens")
    assert listed.json()["items"][0]["players"] == 1
