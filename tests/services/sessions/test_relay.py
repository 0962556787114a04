"""The relay on a real hub: game-pad frames (newest wins, coalescing, limits), the screen talking back, remote
keys, text and apps over the session, and the app API over HTTP."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from typing import Any

import pytest

from tests.services.sessions.conftest import LivingRoom, eventually, phone
from tosplus.sim.controller import PairedSession, PairingFailed, SessionSocket


def frame(seq: int, buttons: int = 0, axes: list[float] | None = None, t_sent: float = 1.0) -> dict[str, Any]:
    return {"type": "input", "seq": seq, "t_sent": t_sent, "buttons": buttons, "axes": axes or [0.0, 0.0]}


def recorder(room: LivingRoom) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    room.screen.link.on_input(got.append)
    return got


async def paired(room: LivingRoom, name: str = "phone") -> PairedSession:
    return await phone(room.hub, room.owner, name).pair(room.tv["id"], code=await room.code())


async def app_launches(room: LivingRoom, count: int) -> list[dict[str, Any]]:
    """The home's audit entries of app launches, once there are ``count`` (they are written in the background)."""
    launches: list[dict[str, Any]] = []
    for _ in range(100):
        audit = await room.owner.api.get(f"/api/v1/homes/{room.home['id']}/audit")
        launches = [e for e in audit.json()["items"] if e["action"] == "screen.app_launched"]
        if len(launches) >= count:
            break
        await asyncio.sleep(0.05)
    return launches


async def stats(link: SessionSocket) -> dict[str, int]:
    await link.send({"type": "status"})
    return dict((await link.next("status"))["input"])


async def test_frames_reach_the_screen_in_order_and_the_newest_wins(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    session = await paired(room)
    async with phone(room.hub, room.owner).connect(session) as link:
        for seq in (1, 2, 3, 2, 3, 5, 4):  # a duplicate and two late frames
            await link.send(frame(seq, buttons=seq, axes=[0.5, -1.0], t_sent=1000.5 + seq))
            await asyncio.sleep(0.02)  # at 50 Hz: each one reaches the TV before the next (no coalescing)
        assert await link.send_input(0b101, [1.0, 0.25]) == 1  # the SDK counts from 1: stale here
        await eventually(lambda: len(got) == 4)
        assert (await stats(link))["stale"] == 4
        # the hub's own WebSocket protocol hands both sides' messages to the relay as the socket reads them
        sessions = room.hub.hub.sessions
        for side in (sessions.controllers[session.session_id], sessions.screens[room.tv["id"]]):
            assert side.link.direct is not None and side.link.direct.handler is not None
        await asyncio.sleep(0.1)
    assert [f["seq"] for f in got] == [1, 2, 3, 5]
    last = got[-1]
    assert {k: last[k] for k in ("session_id", "slot", "buttons", "axes", "t_sent")} == {
        "session_id": session.session_id,
        "slot": 1,
        "buttons": 5,
        "axes": [0.5, -1.0],
        "t_sent": 1005.5,
    }
    assert last["t_hub"] > 1.6e12  # the hub's clock in ms
    assert room.screen.pads[1]["seq"] == 5 and room.screen.frames == 4


async def test_a_slow_screen_gets_the_newest_frame_not_a_backlog(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    sessions = room.hub.hub.sessions
    sessions.relay.input_rate = 1_000_000  # the flood limit is another test's business
    session = await paired(room)
    transport = room.screen.link._ws.transport
    async with phone(room.hub, room.owner).connect(session) as link:
        controller = sessions.controllers[session.session_id]
        transport.pause_reading()  # the TV stops reading: the hub's socket to it fills up
        seq = 0
        for _ in range(400):
            for _ in range(200):
                seq += 1
                await link.send(frame(seq, buttons=seq & 0xFFFF, axes=[0.1] * 8))
            if controller.stats.coalesced > 100:
                break
            await asyncio.sleep(0.01)
        assert controller.stats.coalesced > 100
        await eventually(lambda: controller.last_seq == seq)
        transport.resume_reading()
        await eventually(lambda: bool(got) and got[-1]["seq"] == seq, timeout_s=10)
        # Every frame was either delivered or replaced by a newer one; nothing queued behind, nothing lost late.
        assert controller.stats.relayed == seq
        assert len(got) == seq - controller.stats.coalesced < seq
        seqs = [f["seq"] for f in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert room.screen.link.connected and controller.state == "connected"


async def test_bad_frames_are_refused_with_a_reason_and_the_session_goes_on(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    async with phone(room.hub, room.owner).connect(await paired(room)) as link:
        bad = [
            ({**frame(1), "seq": "1"}, "seq"),
            ({**frame(1), "seq": -1}, "seq"),
            ({k: v for k, v in frame(1).items() if k != "t_sent"}, "t_sent"),
            ({**frame(1), "buttons": 2**32}, "buttons"),
            ({**frame(1), "buttons": True}, "buttons"),
            ({**frame(1), "axes": [0.0] * 9}, "axes"),
            ({**frame(1), "axes": [0.0, 1.5]}, "axis"),
            ({**frame(1), "axes": "up"}, "axes"),
            ({**frame(1), "padding": "x" * 1100}, "1024 bytes"),
        ]
        for doc, why in bad:
            await link.send(doc)
            error = await link.next("error")
            assert error["for"] == "input" and why in error["detail"], (doc, error)
        await link.send({"type": "text", "text": "x" * 9000})  # beyond any message's size
        assert (await link.next("error"))["for"] == "message"
        await link.ws.send("{not json")
        assert "JSON" in (await link.next("error"))["detail"]
        await link.send_input(3, [0.0, 1.0])
        await eventually(lambda: len(got) == 1)
        assert (await stats(link))["malformed"] == len(bad)
    assert got[0]["buttons"] == 3


async def test_a_flood_is_cut_at_120_frames_a_second(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    async with phone(room.hub, room.owner).connect(await paired(room)) as link:
        for seq in range(1, 301):  # far faster than 60 Hz: well within one second
            await link.send(frame(seq))
        error = await link.next("error")
        assert error["for"] == "input" and "120" in error["detail"]
        counted = await stats(link)
        assert (counted["relayed"], counted["flooded"]) == (120, 180)
        assert link.errors == 1  # one error for the flood, not one per dropped frame
        await eventually(lambda: bool(got) and got[-1]["seq"] == 120)
        await asyncio.sleep(1.05)  # the next second: frames flow again
        await link.send(frame(301))
        await eventually(lambda: got[-1]["seq"] == 301)
        assert (await stats(link))["flooded"] == 180


async def test_only_the_paired_phone_of_a_live_session_can_send(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    session = await paired(room)
    member = await room.join("member")
    intruder = phone(room.hub, member)
    for attempt in (session, PairedSession(**{**_fields(session), "resume_token": "x" * 43})):
        try:
            async with intruder.connect(attempt):
                raise AssertionError("someone else's session was opened")
        except PairingFailed as refused:
            assert refused.status == 4404
    async with phone(room.hub, room.owner).connect(session) as link:
        await link.send({"type": "close"})
        assert (await link.next("closed"))["reason"] == "closed"
        await link.next("socket.closed")
    try:
        async with phone(room.hub, room.owner).connect(session):
            raise AssertionError("a closed session was opened again")
    except PairingFailed as refused:
        assert refused.status == 4404
    await asyncio.sleep(0.1)
    assert got == []


async def test_remote_keys_text_and_apps_reach_the_screen(any_living_room: LivingRoom) -> None:
    room = any_living_room
    tv = room.screen
    session = await paired(room)
    async with phone(room.hub, room.owner).connect(session) as link:
        for key in ("volume_up", "volume_up", "channel_up", "mute"):
            await link.remote(key)
        await eventually(lambda: len(tv.keys) == 4)
        assert (tv.volume, tv.channel, tv.muted) == (22, 2, True)
        await link.remote("self_destruct")
        assert (await link.next("error"))["for"] == "remote"
        await link.send({"type": "remote", "key": ["ok"]})
        assert (await link.next("error"))["for"] == "remote"
        await link.send({"type": "app", "op": ["launch"], "app_id": "youtube"})
        assert (await link.next("error"))["for"] == "app"
        await link.text("Star Wars")
        await eventually(lambda: tv.typed == "Star Wars")
        await link.text("x" * 501)
        assert (await link.next("error"))["for"] == "text"
        launched = await link.launch_app("youtube", {"v": "dQw4w9WgXcQ"})
        assert (launched["app_id"], launched["state"]) == ("youtube", "running")
        assert (await link.app_status("netflix"))["state"] == "stopped"
        assert (await link.launch_app("netflix"))["state"] == "running"
        assert tv.apps["youtube"] == "stopped"  # one app in the foreground
        assert (await link.stop_app("netflix"))["state"] == "stopped"
        assert (await link.launch_app("doom"))["state"] == "not_installed"
        await link.send({"type": "app", "op": "install", "app_id": "doom", "request_id": "r1"})
        assert (await link.next("error"))["for"] == "app"
    launches = await app_launches(room, 3)
    assert sorted(e["detail"]["app_id"] for e in launches) == ["doom", "netflix", "youtube"]
    assert all(e["detail"]["session_id"] == session.session_id for e in launches)


async def test_the_screen_talks_back_to_one_player_or_to_all(
    living_room: LivingRoom, caplog: pytest.LogCaptureFixture
) -> None:
    room = living_room
    room.screen.echo = True
    first, second = await paired(room, "first"), await paired(room, "second")
    async with (
        phone(room.hub, room.owner).connect(first) as one,
        phone(room.hub, room.owner).connect(second) as two,
    ):
        heard: list[dict[str, Any]] = []
        one.on_screen_message(heard.append)
        await room.screen.link.send_to_controller(second.session_id, {"colour": "red", "score": 3})
        assert (await two.next("from_screen"))["data"] == {"colour": "red", "score": 3}
        await room.screen.link.broadcast({"round": 2})
        assert (await one.next("from_screen"))["data"] == {"round": 2}
        assert (await two.next("from_screen"))["data"] == {"round": 2}
        seq = await one.send_input(1, [0.0])  # the simulated TV echoes it: the phone's round trip
        echo = (await one.next("from_screen"))["data"]
        assert echo["echo_seq"] == seq and isinstance(echo["t_sent"], float)
        assert heard == [{"round": 2}, echo]
        assert two.events.empty()  # the echo went to the sender only
        # What the hub cannot deliver is refused to the screen, with the reason.
        with caplog.at_level(logging.WARNING, logger="tosplus.sdk.screen"):
            await room.screen.link.send_to_controller("ses_nobody", {"score": 1})
            await room.screen.link._send({"type": "broadcast", "data": "not an object"})
            await room.screen.link._send({"type": "app.state", "request_id": "r9", "app_id": "x", "state": ["on"]})
            await eventually(lambda: len([r for r in caplog.records if "refused" in r.getMessage()]) == 3)
        refused = " ".join(r.getMessage() for r in caplog.records)
        assert "to_controller" in refused and "broadcast" in refused and "app.state" in refused
        assert two.events.empty() and one.events.empty()


async def test_the_app_api_over_http(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    path = f"/api/v1/screens/{tv_id}/apps"
    owner = room.owner.api
    status = await owner.get(f"{path}/youtube")
    assert status.status_code == 200 and status.json()["state"] == "stopped"
    assert status.json()["app_id"] == "youtube" and status.json()["request_id"]
    launched = await owner.post(f"{path}/youtube", json={"params": {"v": "abc"}})
    assert launched.status_code == 200 and launched.json()["state"] == "running"
    assert room.screen.apps["youtube"] == "running"
    assert (await owner.delete(f"{path}/youtube")).json()["state"] == "stopped"
    assert (await owner.get(f"{path}/doom")).json()["state"] == "not_installed"
    assert (await owner.post(f"{path}/youtube", json={"params": "v=abc"})).status_code == 422
    # Guests only when the home allows it; strangers do not even see the screen.
    guest = await room.join("guest")
    assert (await guest.api.post(f"{path}/youtube")).status_code == 403
    allowed = await owner.patch(f"/api/v1/sessions/homes/{room.home['id']}/settings", json={"guests_may_control": True})
    assert allowed.status_code == 200
    assert (await guest.api.post(f"{path}/netflix")).json()["state"] == "running"
    stranger = await room.join("guest", devices=[])
    assert (await stranger.api.get(f"{path}/netflix")).status_code == 404
    assert (await room.hub.api.get(f"{path}/netflix")).status_code == 403  # an operator is not a person of the home
    launches = await app_launches(room, 2)
    assert [e["detail"]["app_id"] for e in launches] == ["netflix", "youtube"]  # newest first
    assert launches[0]["actor_id"] == guest.user_id
    # A screen that does not answer: 504; a screen that is not connected: 409.
    room.hub.hub.sessions.relay.app_timeout_s = 0.3
    room.screen.link.on_app(lambda request: None)
    silent = await owner.get(f"{path}/youtube")
    assert silent.status_code == 504, silent.text
    await room.screen.link.close()
    await eventually(lambda: room.hub.hub.sessions.screens[tv_id].link is None)
    assert (await owner.post(f"{path}/youtube")).status_code == 409


async def test_a_lost_player_pauses_and_frames_flow_again_after_resume(living_room: LivingRoom) -> None:
    room = living_room
    got = recorder(room)
    session = await paired(room)
    async with phone(room.hub, room.owner).connect(session) as link:
        await link.send_input(1, [0.0])
        await eventually(lambda: len(got) == 1)
    await eventually(lambda: room.screen.paused == {1})
    assert room.screen.events[-1][0] == "controller.lost"
    async with phone(room.hub, room.owner).connect(session) as link:  # the app restarted: seq counts from 1
        await eventually(lambda: room.screen.paused == set())
        assert room.screen.events[-1][0] == "controller.resumed"
        await link.send_input(2, [0.5])
        await eventually(lambda: len(got) == 2)
    assert [(f["seq"], f["buttons"]) for f in got] == [(1, 1), (1, 2)]


def _fields(session: PairedSession) -> dict[str, Any]:
    return {f: getattr(session, f) for f in session.__slots__}


def test_the_phone_side_ships_without_the_hub() -> None:
    code = (
        "import sys, tosplus.sdk.controller\n"
        "print(sorted(m for m in sys.modules if m.startswith('tosplus') and not m.startswith('tosplus.sdk')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tosplus']"


async def test_the_phone_talks_to_its_screen(living_room: LivingRoom) -> None:
    room = living_room
    heard: list[dict[str, Any]] = []
    room.screen.link.on_controller_message(heard.append)
    first, second = await paired(room, "first"), await paired(room, "second")
    async with (
        phone(room.hub, room.owner).connect(first) as one,
        phone(room.hub, room.owner).connect(second) as two,
    ):
        await one.send_to_screen({"rtt_ms": 12.5})
        await two.send_to_screen({"rtc": {"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 1000}})  # 6 KB: fits
        await eventually(lambda: len(heard) == 2)
        assert heard[0] == {
            "type": "from_controller",
            "session_id": first.session_id,
            "slot": 1,
            "data": {"rtt_ms": 12.5},
        }
        assert (heard[1]["session_id"], heard[1]["slot"]) == (second.session_id, 2)
        assert heard[1]["data"]["rtc"]["type"] == "offer"
        # The hub says who sent it: a phone cannot speak for another player.
        await one.send({"type": "to_screen", "session_id": second.session_id, "slot": 2, "data": {"rtt_ms": 1}})
        await eventually(lambda: len(heard) == 3)
        assert (heard.pop()["session_id"], heard[0]["slot"]) == (first.session_id, 1)
        # Not an object, or beyond the message limit: refused with the reason, nothing reaches the screen.
        for bad in ({"type": "to_screen", "data": "hello"}, {"type": "to_screen"}, {"type": "to_screen", "data": [1]}):
            await one.send(bad)
            error = await one.next("error")
            assert error["for"] == "to_screen" and "object" in error["detail"], error
        await one.send_to_screen({"blob": "x" * 9000})
        assert (await one.next("error"))["for"] == "message"
        # Not input: more than 20 a second are dropped for the rest of that second, with one error.
        room.hub.hub.sessions.relay._to_screen_windows.clear()  # a fresh second for the count (the offer counted)
        for n in range(30):
            await two.send_to_screen({"n": n})
        error = await two.next("error")
        assert error["for"] == "to_screen" and "20" in error["detail"]
        await eventually(lambda: len(heard) == 2 + 20)
        await asyncio.sleep(0.1)
        assert [m["data"]["n"] for m in heard[2:]] == list(range(20)) and two.errors == 1
        await asyncio.sleep(1.0)  # the next second: it flows again
        await two.send_to_screen({"n": 30})
        await eventually(lambda: heard[-1]["data"] == {"n": 30})
        assert len(heard) == 23
        # A screen that is not connected cannot be told.
        tv_id = room.tv["id"]
        await room.screen.link.close()
        await eventually(lambda: room.hub.hub.sessions.screens[tv_id].link is None)
        await one.send_to_screen({"rtt_ms": 9})
        error = await one.next("error")
        assert error["for"] == "to_screen" and "not connected" in error["detail"]
    assert len(heard) == 23
    assert room.hub.hub.sessions.relay._to_screen_windows.keys() <= {first.session_id, second.session_id}


# -- input frames in batches (a screen that says "batch": true in its hello) ----------------------------------

FRAME_FIELDS = {"type", "session_id", "slot", "seq", "t_sent", "t_hub", "buttons", "axes"}


async def pile_up(links: list[SessionSocket], controllers: list[Any], pause: Any) -> int:
    """Frames from every player while the screen does not read (``pause``), until each player's were coalesced;
    the last ``seq`` sent, once the hub has relayed it for everyone."""
    pause()
    seq = 0
    for _ in range(400):
        for _ in range(50):
            seq += 1
            for n, link in enumerate(links):
                await link.send(frame(seq, buttons=n, axes=[0.1] * 8))
        if min(c.stats.coalesced for c in controllers) > 20:
            break
        await asyncio.sleep(0.01)
    assert min(c.stats.coalesced for c in controllers) > 20
    await eventually(lambda: all(c.last_seq == seq for c in controllers))
    return seq


async def test_a_batching_screen_gets_each_players_newest_frame_together_in_one_message(
    living_room: LivingRoom,
) -> None:
    import contextlib

    room = living_room
    got = recorder(room)
    tv = room.screen.link  # the SDK's screen asks for batches
    on_the_wire: list[dict[str, Any]] = []
    unpack = tv._handle

    async def seen(doc: dict[str, Any]) -> None:
        on_the_wire.append(doc)
        await unpack(doc)

    tv._handle = seen  # type: ignore[method-assign]
    sessions = room.hub.hub.sessions
    sessions.relay.input_rate = 1_000_000  # the flood limit is another test's business
    players = [await paired(room, f"pad {n}") for n in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        links = [await stack.enter_async_context(phone(room.hub, room.owner).connect(p)) for p in players]
        controllers = [sessions.controllers[p.session_id] for p in players]
        transport = tv._ws.transport
        seq = await pile_up(links, controllers, transport.pause_reading)
        transport.resume_reading()
        await eventually(lambda: len([f for f in got if f["seq"] == seq]) == 3, timeout_s=10)
    inputs = [m for m in on_the_wire if m["type"] in ("input", "inputs")]
    assert inputs and all(m["type"] == "inputs" and set(m) == {"type", "frames"} for m in inputs)
    batches = [m["frames"] for m in inputs]
    assert max(len(b) for b in batches) == 3  # the three players' pending frames went out together
    assert all(len({f["session_id"] for f in b}) == len(b) for b in batches)  # newest wins: one frame a player
    # The SDK hands them on one by one, exactly as frames that came alone.
    assert got == [f for b in batches for f in b]
    assert all(set(f) == FRAME_FIELDS and f["type"] == "input" for f in got)
    for n, (player, controller) in enumerate(zip(players, controllers, strict=True)):
        mine = [f for f in got if f["session_id"] == player.session_id]
        seqs = [f["seq"] for f in mine]
        assert seqs == sorted(set(seqs)) and seqs[-1] == seq
        assert {(f["slot"], f["buttons"]) for f in mine} == {(player.slot, n)}
        assert len(mine) == controller.stats.relayed - controller.stats.coalesced  # nothing lost, nothing twice


async def test_a_screen_that_does_not_ask_for_batches_gets_one_message_a_frame(living_room: LivingRoom) -> None:
    import contextlib

    import orjson
    from websockets.asyncio.client import connect

    room = living_room
    sessions = room.hub.hub.sessions
    sessions.relay.input_rate = 1_000_000
    players = [await paired(room, f"pad {n}") for n in range(2)]
    tv_id = room.tv["id"]
    await room.screen.link.close()  # the browser's TV page takes over, as it would: credentials in the hello
    await eventually(lambda: sessions.screens[tv_id].link is None)
    url = str(room.hub.api.base_url).replace("http://", "ws://") + "/api/v1/sessions/screen"

    async def frames_on(asks: dict[str, Any]) -> list[dict[str, Any]]:
        """Every input message the screen gets while frames of both players pile up at the hub."""
        messages: list[dict[str, Any]] = []
        async with connect(url, proxy=None, compression=None) as ws, contextlib.AsyncExitStack() as stack:
            hello = {"type": "hello", "device_id": tv_id, "secret": room.tv["secret"], **asks}
            await ws.send(orjson.dumps(hello).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            links = [await stack.enter_async_context(phone(room.hub, room.owner).connect(p)) for p in players]
            controllers = [sessions.controllers[p.session_id] for p in players]
            for controller in controllers:
                controller.stats.coalesced = 0
            seq = await pile_up(links, controllers, ws.transport.pause_reading)
            ws.transport.resume_reading()
            last: set[str] = set()
            while len(last) < 2:
                doc = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                if doc["type"] in ("input", "inputs"):
                    messages.append(doc)
                    for f in doc.get("frames", [doc]):
                        if f["seq"] == seq:
                            last.add(f["session_id"])
        return messages

    one_by_one = await frames_on({})
    assert one_by_one and all(m["type"] == "input" and set(m) == FRAME_FIELDS for m in one_by_one)
    for player in players:  # each player's frames in order, the newest last
        seqs = [m["seq"] for m in one_by_one if m["session_id"] == player.session_id]
        assert seqs == sorted(set(seqs))
    batched = await frames_on({"batch": True})  # the same screen asking for batches on its next connection
    assert batched and all(m["type"] == "inputs" and set(m) == {"type", "frames"} for m in batched)
    assert max(len(m["frames"]) for m in batched) == 2
    assert all(set(f) == FRAME_FIELDS and f["type"] == "input" for m in batched for f in m["frames"])
