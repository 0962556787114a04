"""Homes, rooms, members, guests, invitations and ownership."""

from __future__ import annotations

import asyncio
import time

from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code


async def _home_with_lights(hub: HubUnderTest, owner: Person, count: int = 2) -> tuple[dict, list[dict]]:
    home = await owner.create_home("Flat", ("Living room", "Kitchen"))
    devices = []
    for _ in range(count):
        device = await hub.create_device("light")
        bound = await owner.bind(home["id"], await sticker_code(hub, device["id"]), home["rooms"][0]["id"])
        assert bound.status_code == 201, bound.text
        devices.append(device)
    return home, devices


async def _join(owner: Person, joiner: Person, home_id: str, **terms: object) -> None:
    invitation = await owner.api.post(f"/api/v1/homes/{home_id}/invitations", json=terms)
    assert invitation.status_code == 201, invitation.text
    accepted = await joiner.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"].lower()})
    assert accepted.status_code == 200, accepted.text


async def test_home_rooms_and_what_outsiders_see(hub: HubUnderTest) -> None:
    owner, outsider = await sign_up(hub, "owner"), await sign_up(hub, "outsider")
    async with owner.api, outsider.api:
        home, (lamp, _) = await _home_with_lights(hub, owner)
        assert [r["name"] for r in home["rooms"]] == ["Living room", "Kitchen"]
        room = await owner.api.post(f"/api/v1/homes/{home['id']}/rooms", json={"name": "Hall"})
        assert room.status_code == 201
        got = (await owner.api.get(f"/api/v1/homes/{home['id']}")).json()
        assert got["role"] == "owner" and len(got["rooms"]) == 3 and len(got["devices"]) == 2
        assert got["devices"][0]["home_id"] == home["id"]
        assert (await owner.api.get("/api/v1/me")).json()["homes"] == [
            {"id": home["id"], "name": "Flat", "role": "owner"}
        ]
        assert (await outsider.api.get("/api/v1/homes")).json()["items"] == []
        assert (await outsider.api.get(f"/api/v1/homes/{home['id']}")).status_code == 404
        assert (await outsider.api.get("/api/v1/devices")).json()["items"] == []
        assert (await outsider.api.get(f"/api/v1/devices/{lamp['id']}/twin")).status_code == 404
        assert (await hub.api.get(f"/api/v1/homes/{home['id']}")).status_code == 200  # operators see all


async def test_members_invitations_and_removal(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    owner, member, stranger = await sign_up(hub, "o"), await sign_up(hub, "m"), await sign_up(hub, "s")
    async with owner.api, member.api, stranger.api:
        home, (lamp, _) = await _home_with_lights(hub, owner)
        only_for = await owner.api.post(
            f"/api/v1/homes/{home['id']}/invitations", json={"role": "member", "email": member.email}
        )
        code = only_for.json()["code"]
        refused = await stranger.api.post("/api/v1/invitations/accept", json={"code": code})
        assert refused.status_code == 404
        assert (await member.api.post("/api/v1/invitations/accept", json={"code": code})).status_code == 200
        assert (await member.api.post("/api/v1/invitations/accept", json={"code": code})).status_code == 404  # used
        assert (
            await member.api.patch(f"/api/v1/devices/{lamp['id']}/twin/desired", json={"on": True})
        ).status_code == 200
        forbidden = await member.api.post(f"/api/v1/homes/{home['id']}/invitations", json={"role": "member"})
        assert forbidden.status_code == 403 and "owner" in forbidden.json()["detail"]
        assert (await member.api.get(f"/api/v1/homes/{home['id']}/audit")).status_code == 403
        assert (await owner.api.delete(f"/api/v1/homes/{home['id']}/members/{member.user_id}")).status_code == 204
        assert (await member.api.get(f"/api/v1/devices/{lamp['id']}/twin")).status_code == 404
        audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
        actions = [a["action"] for a in audit]
        assert {"member.remove", "invitation.accept", "device.desired", "device.bind", "home.create"} <= set(actions)
        desired = next(a for a in audit if a["action"] == "device.desired")
        assert desired["actor"] == member.email and desired["device_id"] == lamp["id"] and desired["ip"]


async def test_guest_sees_only_chosen_devices_until_expiry(hub: HubUnderTest) -> None:
    owner, guest = await sign_up(hub, "o"), await sign_up(hub, "g")
    async with owner.api, guest.api:
        home, (shown, hidden) = await _home_with_lights(hub, owner)
        no_list = await owner.api.post(f"/api/v1/homes/{home['id']}/invitations", json={"role": "guest"})
        assert no_list.status_code == 422
        expires = int(time.time() * 1000) + 1500
        await _join(owner, guest, home["id"], role="guest", devices=[shown["id"]], guest_expires_at=expires)
        seen = (await guest.api.get(f"/api/v1/homes/{home['id']}")).json()
        assert [d["id"] for d in seen["devices"]] == [shown["id"]] and len(seen["members"]) == 1
        assert (await guest.api.get(f"/api/v1/devices/{shown['id']}/twin")).status_code == 200
        assert (await guest.api.get(f"/api/v1/devices/{hidden['id']}/twin")).status_code == 404
        assert (await guest.api.post(f"/api/v1/devices/{shown['id']}/credentials/rotate")).status_code == 403
        await asyncio.sleep(max(0, expires / 1000 - time.time()) + 0.1)
        assert (await guest.api.get(f"/api/v1/devices/{shown['id']}/twin")).status_code == 404
        assert (await guest.api.get("/api/v1/homes")).json()["items"] == []


async def test_transfer_ownership_and_last_owner_rules(hub: HubUnderTest) -> None:
    owner, member = await sign_up(hub, "o"), await sign_up(hub, "m")
    async with owner.api, member.api:
        home = await owner.create_home()
        left = await owner.api.delete(f"/api/v1/homes/{home['id']}/members/{owner.user_id}")
        assert left.status_code == 409 and "only owner" in left.json()["detail"]
        await _join(owner, member, home["id"], role="member")
        moved = await owner.api.post(f"/api/v1/homes/{home['id']}/transfer", json={"user_id": member.user_id})
        assert moved.status_code == 200 and moved.json()["role"] == "member"
        assert (await member.api.get(f"/api/v1/homes/{home['id']}")).json()["role"] == "owner"
        assert (await owner.api.delete(f"/api/v1/homes/{home['id']}/members/{owner.user_id}")).status_code == 204
        assert (await owner.api.get(f"/api/v1/homes/{home['id']}")).status_code == 404
        assert (await member.api.delete(f"/api/v1/homes/{home['id']}")).status_code == 204
