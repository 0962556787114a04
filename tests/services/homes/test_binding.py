"""Binding devices to homes: codes from the device and from stickers, single use, guessing limits, unbinding."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.hubs import HubUnderTest
from tests.support.people import PASSWORD, new_email, sign_up, sticker_code
from tosplus.sdk import DeviceClient
from tosplus.sdk.client import DeviceError


def _client(hub: HubUnderTest, device: dict) -> DeviceClient:
    return DeviceClient(device["id"], device["secret"], host=hub.mqtt_host, port=hub.mqtt_port)


async def test_screen_device_code_binds_once_and_only_to_one_home(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    device = await hub.create_device("smart-tv")
    alice, bob = await sign_up(hub, "alice"), await sign_up(hub, "bob")
    async with alice.api, bob.api, _client(hub, device) as tv:
        await tv.wait_connected(5)
        shown = await tv.request_binding_code()
        assert len(shown["code"]) == 9 and shown["uri"] == "tosplus:bind:" + shown["code"].replace("-", "")
        home = await alice.create_home()
        bob_home = await bob.create_home()
        bound = await alice.bind(home["id"], shown["code"].lower(), home["rooms"][0]["id"])
        assert bound.status_code == 201, bound.text
        assert bound.json()["home_id"] == home["id"] and bound.json()["room_id"] == home["rooms"][0]["id"]
        again = await bob.bind(bob_home["id"], shown["code"])
        assert again.status_code == 404 and "no device is waiting" in again.json()["detail"]
        # Bound: the device gets no new code, and a sticker code issued before cannot move it either.
        with pytest.raises(DeviceError, match="belongs to a home"):
            await tv.request_binding_code(timeout_s=5)
        assert (await hub.api.post(f"/api/v1/devices/{device['id']}/binding-codes", json={})).status_code == 409
        # The person now controls it, and the device sees it.
        patched = await alice.api.patch(f"/api/v1/devices/{device['id']}/twin/desired", json={"power": True})
        assert patched.status_code == 200, patched.text
        for _ in range(100):
            if tv.desired.get("power") is True:
                break
            await asyncio.sleep(0.05)
        assert tv.desired.get("power") is True


async def test_http_device_gets_a_code(hub: HubUnderTest) -> None:
    device = await hub.create_device("light")
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), auth=(device["id"], device["secret"])) as dev:
        issued = await dev.post("/device/v1/binding-code")
        assert issued.status_code == 201 and issued.json()["kind"] == "screen"
        assert issued.json()["qr_svg"].startswith("<svg")
        wrong = await dev.post("/device/v1/binding-code", auth=(device["id"], "wrong"))
        assert wrong.status_code == 401


async def test_guessing_codes_is_rate_limited(hub: HubUnderTest) -> None:
    device = await hub.create_device("light")
    code = await sticker_code(hub, device["id"])
    guesser = await sign_up(hub, "guesser")
    async with guesser.api:
        home = await guesser.create_home()
        for i in range(10):
            miss = await guesser.bind(home["id"], f"ZZZZ-ZZ{i:02d}")
            assert miss.status_code == 404
        limited = await guesser.bind(home["id"], code)  # even the right code, once the misses are used up
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    # Another account from the same address is limited too: the limit counts per client address as well.
    other = await sign_up(hub, "other")
    async with other.api:
        home = await other.create_home()
        assert (await other.bind(home["id"], code)).status_code == 429


async def test_unbinding_resets_credentials_twin_and_history(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    created = await hub.api.post(
        "/api/v1/products",
        json={
            "id": "acme-plug",
            "name": "ACME plug",
            "manufacturer": "ACME",
            "fleet_provisioning": True,
            "thing_model": {"id": "tos:acme-plug", "title": "plug", "properties": {"on": {"type": "boolean"}}},
        },
    )
    assert created.status_code == 201, created.text
    key = created.json()["provisioning_key"]
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as factory:
        first = await factory.post(
            "/api/v1/provision", json={"product_id": "acme-plug", "provisioning_key": key, "serial": "SN-1"}
        )
        assert first.status_code == 201
        device = first.json()
        owner = await sign_up(hub, "owner")
        async with owner.api:
            home = await owner.create_home()
            async with _client(hub, device) as plug:
                await plug.wait_connected(5)
                code = (await plug.request_binding_code())["code"]
                assert (await owner.bind(home["id"], code)).status_code == 201
                await plug.report({"on": True})
                await plug.send_telemetry({"on": True})
                await plug.flush(5)
                await hub.settle()
            latest = (await owner.api.get(f"/api/v1/devices/{device['id']}/telemetry/latest")).json()
            assert latest["values"]["on"]["value"] is True
            unbound = await owner.api.post(f"/api/v1/homes/{home['id']}/devices/{device['id']}/unbind")
            assert unbound.status_code == 200 and unbound.json()["has_credentials"] is False
            assert (await owner.api.get(f"/api/v1/devices/{device['id']}")).status_code == 404
        twin = (await hub.api.get(f"/api/v1/devices/{device['id']}/twin")).json()
        assert twin["reported"]["state"] == {} and twin["desired"]["state"] == {}
        assert (await hub.api.get(f"/api/v1/devices/{device['id']}/telemetry/latest")).json()["values"] == {}
        # The device's reset flow: provisioning again with the fleet key gives new credentials, same id.
        again = await factory.post(
            "/api/v1/provision", json={"product_id": "acme-plug", "provisioning_key": key, "serial": "SN-1"}
        )
        assert again.status_code == 201 and again.json()["id"] == device["id"]
        assert again.json()["secret"] != device["secret"]
        taken = await factory.post(
            "/api/v1/provision", json={"product_id": "acme-plug", "provisioning_key": key, "serial": "SN-1"}
        )
        assert taken.status_code == 409


async def test_manufacturer_sees_fleet_not_homes(hub: HubUnderTest) -> None:
    maker_email = new_email("maker")
    made = await hub.api.post(
        "/api/v1/users",
        json={
            "email": maker_email,
            "password": PASSWORD,
            "name": "ACME",
            "role": "manufacturer",
            "manufacturer": "ACME",
        },
    )
    assert made.status_code == 201
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        grant = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": maker_email, "password": PASSWORD}
        )
    maker = httpx.AsyncClient(
        base_url=str(hub.api.base_url), headers={"Authorization": f"Bearer {grant.json()['access_token']}"}
    )
    async with maker:
        product = {
            "id": "acme-bulb",
            "name": "ACME bulb",
            "manufacturer": "ACME",
            "thing_model": {"id": "tos:acme-bulb", "title": "bulb", "properties": {"on": {"type": "boolean"}}},
        }
        assert (await maker.post("/api/v1/products", json=product)).status_code == 201
        foreign = await maker.post("/api/v1/products", json={**product, "id": "other-bulb", "manufacturer": "Other"})
        assert foreign.status_code == 403
        bulb = (await maker.post("/api/v1/devices", json={"product_id": "acme-bulb"})).json()
        other = await hub.create_device("light")  # the reference catalog's maker, not ACME
        assert (await maker.get(f"/api/v1/devices/{other['id']}")).status_code == 404
        assert (await maker.get(f"/api/v1/devices/{bulb['id']}/twin")).status_code == 200  # unbound: factory tests
        code = (await maker.post(f"/api/v1/devices/{bulb['id']}/binding-codes", json={"valid_days": 30})).json()
        owner = await sign_up(hub, "owner")
        async with owner.api:
            home = await owner.create_home()
            assert (await owner.bind(home["id"], code["code"])).status_code == 201
        listed = (await maker.get("/api/v1/devices")).json()["items"]
        assert [d["id"] for d in listed] == [bulb["id"]] and listed[0]["bound"] is True and "home_id" not in listed[0]
        assert (await maker.get(f"/api/v1/devices/{bulb['id']}/twin")).status_code == 403
        assert (await maker.patch(f"/api/v1/devices/{bulb['id']}/twin/desired", json={"on": True})).status_code == 403
        assert (await maker.get(f"/api/v1/homes/{home['id']}")).status_code == 404
