"""Controller ↔ screen sessions: slots, resume after a drop, kick, the player limit, presence on both sides."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.services.sessions.conftest import LivingRoom, eventually, phone
from tosplus.sim.controller import PairingFailed


async def test_a_dropped_phone_resumes_in_its_slot(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    alice = phone(room.hub, room.owner, "Alice's phone")
    first = await alice.pair(tv_id, code=await room.code())
    second = await phone(room.hub, room.owner, "Tablet").pair(tv_id, code=await room.code())
    assert (first.slot, second.slot) == (1, 2)
    async with alice.connect(first) as link:
        assert link.welcome["session"]["slot"] == 1 and link.welcome["session"]["screen_online"] is True
        assert await link.ping() < 1000
        await eventually(lambda: room.screen.link.controllers[first.session_id]["state"] == "connected")
    # The connection dropped: the TV sees the player lost, the slot is held.
    await eventually(lambda: room.screen.link.controllers[first.session_id]["state"] == "lost")
    assert [e for e, d in room.screen.events if d["session_id"] == first.session_id][-1] == "controller.lost"
    async with alice.connect(first) as link:
        assert link.welcome["session"]["slot"] == 1 and link.welcome["session"]["session_id"] == first.session_id
    assert "controller.resumed" in [e for e, d in room.screen.events if d["session_id"] == first.session_id]
    # A wrong resume token does not take the session over.
    forged = type(first)(**{**{f: getattr(first, f) for f in first.__slots__}, "resume_token": "x" * 43})
    with pytest.raises(PairingFailed) as refused:
        async with alice.connect(forged):
            pass
    assert refused.value.status == 4404
    listed = await room.owner.api.get("/api/v1/sessions")
    assert sorted(s["slot"] for s in listed.json()["items"]) == [1, 2]
    players = await room.owner.api.get(f"/api/v1/sessions/screens/{tv_id}")
    assert players.json()["players"] == 2 and players.json()["online"] is True


async def test_each_side_sees_the_other_and_silence_ends_a_session(living_room: LivingRoom) -> None:
    room = living_room
    sessions = room.hub.hub.sessions
    paired = await phone(room.hub, room.owner).pair(room.tv["id"], code=await room.code())
    async with phone(room.hub, room.owner).connect(paired) as link:
        await room.screen.link.close()  # the TV goes away ...
        assert (await link.next("screen.offline"))["device_id"] == room.tv["id"]
        # From now on: keep-alives every 0.1 s (the TV is told in its welcome), silent after 0.5 s.
        sessions.keepalive_s, sessions.silence_s, sessions.resume_grace_s = 0.1, 0.5, 0.6
        await room.screen.link.start()  # ... and comes back within the grace period: the player is still there
        assert (await link.next("screen.online"))["device_id"] == room.tv["id"]
        await room.screen.link.wait_connected(5)
        assert paired.session_id in room.screen.link.controllers
        # A phone that sends no keep-alives is lost, then its session ends after the grace period.
        closed = await link.next("socket.closed", timeout_s=5)
        assert closed["code"] == 4408
    await eventually(lambda: paired.session_id not in sessions.controllers)
    await eventually(lambda: paired.session_id not in room.screen.link.controllers)
    assert room.screen.events[-1][0] == "controller.left" and room.screen.events[-1][1]["reason"] == "timeout"


async def test_the_tv_kicks_a_player_and_the_slot_is_free_again(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    member = await room.join("member")
    mine = await phone(room.hub, room.owner).pair(tv_id, code=await room.code())
    theirs = await phone(room.hub, member).pair(tv_id, code=await room.code())
    async with phone(room.hub, member).connect(theirs) as link:
        await room.screen.link.kick(theirs.session_id, forget=True)
        assert (await link.next("kicked"))["session_id"] == theirs.session_id
        assert (await link.next("closed"))["reason"] == "kicked"
    assert (await member.api.get(f"/api/v1/sessions/{theirs.session_id}")).status_code == 404
    await eventually(lambda: room.hub.hub.sessions.store.credentials.get(theirs.credential[0]) is None)  # type: ignore[index]
    again = await phone(room.hub, member).pair(tv_id, code=await room.code())
    assert again.slot == 2 and mine.slot == 1
    # An owner of the home can end someone's session from the API too; a member cannot end the owner's.
    assert (await member.api.delete(f"/api/v1/sessions/{mine.session_id}")).status_code == 403
    assert (await room.owner.api.delete(f"/api/v1/sessions/{again.session_id}")).status_code == 204


async def test_at_most_eight_players_unless_the_game_says_otherwise(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    slots = []
    for i in range(8):
        slots.append((await phone(room.hub, room.owner, f"phone {i}").pair(tv_id, code=await room.code())).slot)
    assert slots == list(range(1, 9))
    with pytest.raises(PairingFailed) as full:
        await phone(room.hub, room.owner, "ninth").pair(tv_id, code=await room.code())
    assert full.value.status == 409 and "full (8 players)" in full.value.detail
    await room.screen.link.set_max_players(9)
    await eventually(lambda: room.hub.hub.sessions.screens[tv_id].max_players == 9)
    ninth = await phone(room.hub, room.owner, "ninth").pair(tv_id, code=await room.code())
    assert ninth.slot == 9
    screens = await room.owner.api.get("/api/v1/screens")
    (tv,) = screens.json()["items"]
    assert tv["players"] == 9 and tv["max_players"] == 9 and tv["may_control"] is True and tv["session_ready"]


async def test_a_screen_connection_needs_the_device_credentials(living_room: LivingRoom) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = str(living_room.hub.api.base_url).replace("http://", "ws://") + "/api/v1/sessions/screen"
    async with connect(url, proxy=None) as ws:
        await ws.send(orjson.dumps({"type": "hello", "device_id": living_room.tv["id"], "secret": "wrong"}).decode())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401
