"""Scenes through the API: define, run with per-device results, event triggers, who may see and run them."""

from __future__ import annotations

import asyncio

from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk import DeviceClient


async def _bound(hub: HubUnderTest, person: Person, home_id: str, product: str = "light") -> dict:
    device = await hub.create_device(product)
    assert (await person.bind(home_id, await sticker_code(hub, device["id"]))).status_code == 201
    return device


async def test_movie_night_reports_every_device(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    owner, intruder = await sign_up(hub, "owner"), await sign_up(hub, "intruder")
    async with owner.api, intruder.api:
        home = await owner.create_home()
        lamp, other_lamp = await _bound(hub, owner, home["id"]), await _bound(hub, owner, home["id"])
        scene = {
            "name": "Movie night",
            "actions": [
                {"device_id": lamp["id"], "desired": {"on": True, "brightness": 20}},
                {"device_id": other_lamp["id"], "desired": {"on": False}},
            ],
        }
        bad = await owner.api.post(f"/api/v1/homes/{home['id']}/scenes", json={**scene, "actions": []})
        assert bad.status_code == 422
        created = await owner.api.post(f"/api/v1/homes/{home['id']}/scenes", json=scene)
        assert created.status_code == 201, created.text
        scene_id = created.json()["id"]
        assert (await intruder.api.post(f"/api/v1/scenes/{scene_id}/run")).status_code == 404
        assert (await intruder.api.get(f"/api/v1/homes/{home['id']}/scenes")).status_code == 404
        async with DeviceClient(lamp["id"], lamp["secret"], host=hub.mqtt_host, port=hub.mqtt_port) as device:
            device.on_desired(lambda changed, full: changed)  # applies and reports what it was asked
            await device.wait_connected(5)
            run = await owner.api.post(f"/api/v1/scenes/{scene_id}/run")
        assert run.status_code == 200, run.text
        body = run.json()
        assert body["outcome"] == "partial"
        statuses = {r["device_id"]: r["status"] for r in body["results"]}
        assert statuses == {lamp["id"]: "applied", other_lamp["id"]: "offline"}
        offline = next(r for r in body["results"] if r["status"] == "offline")
        assert "kept as desired state" in offline["detail"]
        runs = (await owner.api.get(f"/api/v1/scenes/{scene_id}/runs")).json()["items"]
        assert [r["id"] for r in runs] == [body["id"]]
        audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
        assert any(a["action"] == "scene.run" and a["detail"]["outcome"] == "partial" for a in audit)


async def test_a_device_event_runs_a_scene(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home()
        bell = await _bound(hub, owner, home["id"], "smart-tv")
        lamp = await _bound(hub, owner, home["id"])
        created = await owner.api.post(
            f"/api/v1/homes/{home['id']}/scenes",
            json={
                "name": "Welcome",
                "actions": [{"device_id": lamp["id"], "desired": {"on": True}}],
                "trigger": {"device_id": bell["id"], "event": "button_pressed"},
            },
        )
        assert created.status_code == 201, created.text
        async with DeviceClient(bell["id"], bell["secret"], host=hub.mqtt_host, port=hub.mqtt_port) as tv:
            await tv.send_event("button_pressed", {"key": "home"})
            await tv.flush(5)
        for _ in range(200):
            runs = (await owner.api.get(f"/api/v1/scenes/{created.json()['id']}/runs")).json()["items"]
            if runs:
                break
            await asyncio.sleep(0.05)
        assert runs and runs[0]["trigger"] == "event" and runs[0]["results"][0]["status"] == "offline"
        twin = (await owner.api.get(f"/api/v1/devices/{lamp['id']}/twin")).json()
        assert twin["desired"]["state"] == {"on": True}
