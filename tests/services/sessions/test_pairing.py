"""Pairing a phone with a TV through the hub: SPAKE2 keys on both sides, codes once and limited, no code needed
for a phone paired before, guests only where the home allows."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.services.sessions.conftest import LivingRoom, eventually, phone
from tests.support.hubs import running_hub
from tests.support.people import sign_up, sticker_code
from tosplus.sdk.pairing import ControllerPairing, FileCredentials, b64, generate_code
from tosplus.sim.controller import PairingFailed, SimController
from tosplus.sim.screen import SimScreen


def _wrong(code: str) -> str:
    wrong = generate_code()
    while wrong == code:
        wrong = generate_code()
    return wrong


def _reachable(value: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """Every value reachable from ``value`` through attributes, dicts and sequences (the hub's state)."""
    seen = seen if seen is not None else set()
    if id(value) in seen or depth > 8:
        return []
    seen.add(id(value))
    found = [value]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _reachable(k, depth + 1, seen) + _reachable(v, depth + 1, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            found += _reachable(v, depth + 1, seen)
    elif hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {})) + list(getattr(type(value), "__slots__", ()))
        for name in names:
            if name in ("hub", "sessions", "websocket", "_writer", "_queue", "loop", "_loop"):
                continue
            with contextlib.suppress(AttributeError):
                found += _reachable(getattr(value, name), depth + 1, seen)
    return found


async def test_pairing_derives_one_key_on_both_sides_and_the_hub_never_holds_it(
    living_room: LivingRoom, caplog: pytest.LogCaptureFixture
) -> None:
    room = living_room
    caplog.set_level(logging.DEBUG)
    sent: list[dict[str, Any]] = []
    screen_state = room.hub.hub.sessions.screens[room.tv["id"]]
    original = screen_state.link.send
    screen_state.link.send = lambda doc: (sent.append(doc), original(doc))[1]  # what the hub relays to the TV
    code = await room.code()
    assert room.screen.screen_text == f"{code[:4]} {code[4:]}" and room.screen.qr_svg.startswith("<svg")

    paired = await phone(room.hub, room.owner, "Owner's phone").pair(room.tv["id"], code=code)

    assert paired.slot == 1 and paired.via == "code" and paired.credential is not None
    await eventually(lambda: paired.session_id in room.screen.link.session_keys)
    assert room.screen.link.session_keys[paired.session_id] == paired.session_key  # both sides agree
    assert room.screen.link.pairing.credentials.get(paired.credential[0]) == paired.credential[1]
    # The hub relayed SPAKE2 messages only: neither the code nor the key nor the credential secret is in its
    # state, in what it sent, or in any log line.
    secrets_ = [paired.session_key, paired.credential[1]]
    texts = [code, f"{code[:4]} {code[4:]}", *(b64(s) for s in secrets_), *(s.hex() for s in secrets_)]
    for value in (
        _reachable(room.hub.hub.sessions.pairings)
        + _reachable(room.hub.hub.sessions.store)
        + _reachable(room.hub.hub.sessions.screens)
    ):
        assert not (isinstance(value, bytes) and value in secrets_)
        assert not (isinstance(value, str) and any(t in value for t in texts))
    assert any(doc["type"] == "pair.request" for doc in sent) and any(doc["type"] == "pair.confirm" for doc in sent)
    for doc in sent:
        assert not any(t in str(doc) for t in texts)
    for record in caplog.records:
        assert not any(t in record.getMessage() for t in texts)
    # The code worked once: the TV shows a new one, and the hub's window for the used one is closed.
    await eventually(lambda: room.screen.shown is not None and room.screen.shown.code != code)
    with pytest.raises(PairingFailed) as used:
        await phone(room.hub, room.owner).pair(room.tv["id"], code=code)
    assert used.value.status == 403 and "wrong" in used.value.detail


async def test_wrong_codes_burn_the_code_after_five_attempts_and_limit_the_person(living_room: LivingRoom) -> None:
    room = living_room
    member = await room.join("member")
    tv_id = room.tv["id"]
    code = await room.code()
    # A wrong code shows on the phone (the screen's confirmation does not match): it says so, and that counts.
    for i in range(4):
        with pytest.raises(PairingFailed) as refused:
            await phone(room.hub, member).pair(tv_id, code=_wrong(code))
        assert refused.value.reason == "wrong_code", i
    # A phone that sends a confirmation anyway is refused by the screen's verdict (the fifth attempt).
    side = ControllerPairing(tv_id, code=_wrong(code))
    started = await member.api.post("/api/v1/sessions/pairings", json={"device_id": tv_id, "msg_a": b64(side.msg_a)})
    assert started.status_code == 201, started.text
    confirmed = await member.api.post(
        f"/api/v1/sessions/pairings/{started.json()['attempt_id']}/confirm", json={"confirm_a": b64(b"x" * 32)}
    )
    assert confirmed.status_code == 403 and "wrong" in confirmed.json()["detail"]
    # Five attempts burnt the code: the TV shows a new one, and the old (right) code no longer works.
    await eventually(lambda: room.screen.shown is not None and room.screen.shown.code != code)
    with pytest.raises(PairingFailed) as burnt:
        await phone(room.hub, member).pair(tv_id, code=code)
    assert burnt.value.status == 403
    # 20 misses per person in 10 minutes: 6 so far, 14 more, then even the right code is refused (429).
    screen = room.hub.hub.sessions.screens[tv_id]
    for _ in range(14):
        await eventually(lambda: screen.window is not None and screen.window.current is None)
        with pytest.raises(PairingFailed) as miss:
            await phone(room.hub, member).pair(tv_id, code=_wrong(await room.code()))
        assert miss.value.reason == "wrong_code"
    await eventually(lambda: screen.window is not None)
    with pytest.raises(PairingFailed) as limited:
        await phone(room.hub, member).pair(tv_id, code=await room.code())
    assert limited.value.status == 429
    # Someone else of the home is not held back by it.
    paired = await phone(room.hub, room.owner).pair(tv_id, code=await room.code())
    assert paired.slot == 1
    audit = await room.owner.api.get(f"/api/v1/homes/{room.home['id']}/audit")
    actions = [e["action"] for e in audit.json()["items"]]
    assert "session.paired" in actions and actions.count("session.pair_failed") >= 20


async def test_expired_and_closed_codes_are_refused(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    sessions = room.hub.hub.sessions
    code = await room.code()
    window = sessions.screens[tv_id].window
    assert window is not None
    window.expires_at = sessions.clock() - 0.1  # five minutes later
    with pytest.raises(PairingFailed) as expired:
        await phone(room.hub, room.owner).pair(tv_id, code=code)
    assert expired.value.status == 409 and "no pairing code" in expired.value.detail
    # The sweep closes the expired window and the TV shows a fresh code for a fresh window.
    await eventually(lambda: room.screen.shown is not None and room.screen.shown.code != code)
    await eventually(lambda: sessions.screens[tv_id].window is not None)
    await room.screen.link.close_pairing()
    await eventually(lambda: sessions.screens[tv_id].window is None)
    with pytest.raises(PairingFailed) as closed:
        await phone(room.hub, room.owner).pair(tv_id, code=code)
    assert closed.value.status == 409


async def test_own_phone_pairs_again_without_a_code(any_living_room: LivingRoom) -> None:
    room = any_living_room  # both deployments: the credential is kept in SQLite or PostgreSQL
    tv_id = room.tv["id"]
    owner_phone = phone(room.hub, room.owner, "Owner's phone")
    first = await owner_phone.pair(tv_id, code=await room.code())
    assert first.credential is not None
    assert (await room.owner.api.delete(f"/api/v1/sessions/{first.session_id}")).status_code == 204
    await room.screen.link.close_pairing()  # the TV shows no code now
    again = await owner_phone.pair(tv_id, credential=first.credential)
    assert again.via == "credential" and again.slot == 1 and again.credential == first.credential
    await eventually(lambda: again.session_id in room.screen.link.session_keys)
    assert room.screen.link.session_keys[again.session_id] == again.session_key != first.session_key
    listed = await room.owner.api.get("/api/v1/sessions/credentials")
    assert [c["id"] for c in listed.json()["items"]] == [first.credential[0]]
    assert listed.json()["items"][0]["last_used_at"] is not None
    # Someone else cannot use it, even knowing the secret.
    member = await room.join("member")
    with pytest.raises(PairingFailed) as stolen:
        await phone(room.hub, member).pair(tv_id, credential=first.credential)
    assert stolen.value.status == 404
    # Forgotten: the hub and the TV drop it; the phone needs a code again.
    forgot = await room.owner.api.delete(f"/api/v1/sessions/credentials/{first.credential[0]}")
    assert forgot.status_code == 204
    await eventually(lambda: room.screen.link.pairing.credentials.get(first.credential[0]) is None)
    with pytest.raises(PairingFailed) as forgotten:
        await owner_phone.pair(tv_id, credential=first.credential)
    assert forgotten.value.status == 404


async def test_leaving_the_home_or_unbinding_the_tv_ends_sessions_and_credentials(living_room: LivingRoom) -> None:
    room = living_room
    tv_id = room.tv["id"]
    member = await room.join("member")
    paired = await phone(room.hub, member).pair(tv_id, code=await room.code())
    assert paired.credential is not None
    left = await member.api.delete(f"/api/v1/homes/{room.home['id']}/members/{member.user_id}")
    assert left.status_code == 204
    await eventually(lambda: paired.session_id not in room.hub.hub.sessions.controllers)
    with pytest.raises(PairingFailed) as gone:
        await phone(room.hub, member).pair(tv_id, credential=paired.credential)
    assert gone.value.status == 404
    mine = await phone(room.hub, room.owner).pair(tv_id, code=await room.code())
    unbound = await room.owner.api.post(f"/api/v1/homes/{room.home['id']}/devices/{tv_id}/unbind")
    assert unbound.status_code == 200, unbound.text
    assert mine.session_id not in room.hub.hub.sessions.controllers
    assert room.hub.hub.sessions.store.of_device(tv_id) == []


async def test_guests_control_the_tv_only_where_the_home_allows_it(living_room: LivingRoom) -> None:
    room = living_room
    tv_id, home_id = room.tv["id"], room.home["id"]
    guest = await room.join("guest", devices=[tv_id])
    member = await room.join("member")
    settings = await guest.api.get(f"/api/v1/sessions/homes/{home_id}/settings")
    assert settings.status_code == 200 and settings.json()["guests_may_control"] is False
    with pytest.raises(PairingFailed) as refused:
        await phone(room.hub, guest).pair(tv_id, code=await room.code())
    assert refused.value.status == 403 and "guests" in refused.value.detail
    screens = await guest.api.get("/api/v1/screens")
    assert [(s["id"], s["may_control"]) for s in screens.json()["items"]] == [(tv_id, False)]
    not_owner = await member.api.patch(f"/api/v1/sessions/homes/{home_id}/settings", json={"guests_may_control": True})
    assert not_owner.status_code == 403
    allowed = await room.owner.api.patch(
        f"/api/v1/sessions/homes/{home_id}/settings", json={"guests_may_control": True}
    )
    assert allowed.status_code == 200 and allowed.json()["guests_may_control"] is True
    guest_phone = phone(room.hub, guest, "Guest's phone")
    paired = await guest_phone.pair(tv_id, code=await room.code())
    async with guest_phone.connect(paired) as link:
        assert link.welcome["session"]["guest"] is True
        await room.owner.api.patch(f"/api/v1/sessions/homes/{home_id}/settings", json={"guests_may_control": False})
        closed = await link.next("closed")
        assert closed["reason"] == "not_allowed"
    # A guest whose list does not hold the TV does not even see it.
    other = await room.join("guest", devices=[])
    with pytest.raises(PairingFailed) as hidden:
        await phone(room.hub, other).pair(tv_id, code=await room.code())
    assert hidden.value.status == 404
    stranger = await sign_up(room.hub, "stranger")
    async with stranger.api:
        assert (await stranger.api.get("/api/v1/screens")).json()["items"] == []
        with pytest.raises(PairingFailed) as unknown:
            await phone(room.hub, stranger).pair(tv_id, code=await room.code())
        assert unknown.value.status == 404


async def test_a_pairing_credential_survives_a_restart_of_the_hub_and_the_tv(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        owner = await sign_up(hub, "owner")
        home = await owner.create_home()
        tv = await hub.create_device("smart-tv")
        await owner.bind(home["id"], await sticker_code(hub, tv["id"]))
        token = str(owner.api.headers["Authorization"])[7:]
        await owner.api.aclose()
        store = tmp_path / "tv" / "pairings.json"
        async with SimScreen(tv["id"], tv["secret"], str(hub.api.base_url), credentials=FileCredentials(store)) as s:
            shown = await s.show_pairing()
            first = await SimController(str(hub.api.base_url), token).pair(tv["id"], code=shown.code)
    assert first.credential is not None
    # The same database, a new hub process (no live sessions), and the TV rebooted with its credentials file.
    async with running_hub(tmp_path / "hub") as hub:
        screen = SimScreen(tv["id"], tv["secret"], str(hub.api.base_url), credentials=FileCredentials(store))
        async with screen:
            await screen.link.wait_connected(10)
            assert screen.shown is None  # no code on screen
            again = await SimController(str(hub.api.base_url), token).pair(tv["id"], credential=first.credential)
            assert again.via == "credential" and again.slot == 1 and again.session_id != first.session_id
