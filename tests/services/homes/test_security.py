"""Security as tests: no token, no access; one home's people reach nothing of another home, by any route."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk import DeviceClient

# Routes that answer without a bearer token, and why.
PUBLIC = {
    ("post", "/api/v1/provision"),  # fleet provisioning: the product's provisioning key is the credential
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/token"),  # OAuth2 token endpoint: the password or refresh token is the credential
    ("post", "/api/v1/auth/session"),
    ("post", "/api/v1/auth/session/refresh"),  # the session cookie is the credential
    ("delete", "/api/v1/auth/session"),
}


async def _routes(hub: HubUnderTest) -> list[tuple[str, str]]:
    spec = (await hub.api.get("/api/v1/openapi.json")).json()
    return [
        (method, path) for path, methods in spec["paths"].items() if path.startswith("/api/v1/") for method in methods
    ]


async def test_every_route_refuses_a_request_without_a_valid_token(hub: HubUnderTest) -> None:
    routes = await _routes(hub)
    assert len(routes) > 50
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        for method, path in routes:
            concrete = re.sub(r"\{[a-z_]+\}", "x", path)
            for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Bearer a.b.c"}):
                response = await anonymous.request(method.upper(), concrete, json={}, headers=headers)
                if (method, path) in PUBLIC:
                    assert response.status_code not in (200, 201) or path.endswith("/auth/session"), (method, path)
                else:
                    assert response.status_code == 401, (method, path, headers, response.status_code)


async def _victim(hub: HubUnderTest) -> tuple[Person, dict[str, Any], dict[str, str]]:
    """A person with a home, a room, a bound device, a command, an invitation, an API key: everything an id."""
    owner = await sign_up(hub, "victim")
    device = await hub.create_device("light")
    home = await owner.create_home("Victim's flat", ("Bedroom",))
    assert (await owner.bind(home["id"], await sticker_code(hub, device["id"]))).status_code == 201
    command = await owner.api.post(f"/api/v1/devices/{device['id']}/commands", json={"name": "blink", "wait": False})
    invitation = (await owner.api.post(f"/api/v1/homes/{home['id']}/invitations", json={"role": "member"})).json()
    key = (await owner.api.post("/api/v1/me/api-keys", json={"name": "k"})).json()
    sessions = (await owner.api.get("/api/v1/me/sessions")).json()["items"]
    ids = {
        "device_id": device["id"],
        "home_id": home["id"],
        "room_id": home["rooms"][0]["id"],
        "user_id": owner.user_id,
        "command_id": command.json().get("id", "x"),
        "invitation_id": invitation["id"],
        "key_id": key["id"],
        "session_id": sessions[0]["id"],
        "product_id": "light",
        "scene_id": "x",
    }
    return owner, device, ids


# What an intruder may legitimately get 2xx from: their own account and homes, and the public product catalog.
OWN_OR_PUBLIC = {"/api/v1/me", "/api/v1/me/api-keys", "/api/v1/me/sessions", "/api/v1/homes", "/api/v1/devices"}


async def test_a_person_reaches_nothing_of_another_home_through_any_route(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    owner, device, ids = await _victim(hub)
    intruder = await sign_up(hub, "intruder")
    async with contextlib.aclosing(owner.api), intruder.api:
        await intruder.create_home("Intruder's flat")
        before = (await owner.api.get(f"/api/v1/homes/{ids['home_id']}")).json()
        victim_ids = {v for k, v in ids.items() if k != "product_id" and v != "x"}
        for method, path in await _routes(hub):
            if (method, path) in PUBLIC or path == "/api/v1/auth/signout-everywhere":
                continue
            concrete = re.sub(r"\{([a-z_]+)\}", lambda m: ids.get(m.group(1), "x"), path)
            response = await intruder.api.request(method.upper(), concrete, json={})
            status = response.status_code
            if path.startswith(("/api/v1/merchant/", "/api/v1/device-payments/")):
                # merchants' routes take a merchant key, devices' a request signed with the device's key
                assert status == 401, (method, concrete, status)
            elif "{" in path and "product_id" not in path:
                assert status in (403, 404, 405, 409, 422), (method, concrete, status, response.text[:200])
            elif status < 300:
                leaked = [v for v in victim_ids if v in response.text]
                assert not leaked, (method, path, leaked)
        # Bodies that would pass validation, on the routes that change things.
        attempts = [
            ("PATCH", f"/api/v1/devices/{device['id']}/twin/desired", {"on": True}),
            ("POST", f"/api/v1/devices/{device['id']}/commands", {"name": "blink", "wait": False}),
            ("POST", f"/api/v1/devices/{device['id']}/credentials/rotate", None),
            ("POST", f"/api/v1/homes/{ids['home_id']}/devices/{device['id']}/unbind", None),
            ("POST", f"/api/v1/homes/{ids['home_id']}/invitations", {"role": "owner"}),
            ("PATCH", f"/api/v1/homes/{ids['home_id']}", {"name": "mine"}),
            ("POST", f"/api/v1/homes/{ids['home_id']}/rooms", {"name": "mine"}),
            ("DELETE", f"/api/v1/homes/{ids['home_id']}/members/{owner.user_id}", None),
            ("DELETE", f"/api/v1/homes/{ids['home_id']}", None),
            ("GET", f"/api/v1/devices?home_id={ids['home_id']}", None),
        ]
        for method, url, body in attempts:
            response = await intruder.api.request(method, url, json=body)
            if method == "GET":
                assert response.json()["items"] == []
            else:
                assert response.status_code == 404, (method, url, response.status_code)
        after = (await owner.api.get(f"/api/v1/homes/{ids['home_id']}")).json()
        assert after == before
        twin = (await owner.api.get(f"/api/v1/devices/{device['id']}/twin")).json()
        assert twin["desired"]["state"] == {}


async def test_the_live_stream_shows_a_person_only_their_devices(hub: HubUnderTest) -> None:
    owner, intruder = await sign_up(hub, "owner"), await sign_up(hub, "intruder")
    async with owner.api, intruder.api:
        theirs, mine = await hub.create_device("thermostat"), await hub.create_device("thermostat")
        for person, device in ((owner, theirs), (intruder, mine)):
            home = await person.create_home()
            assert (await person.bind(home["id"], await sticker_code(hub, device["id"]))).status_code == 201
        base = f"ws://127.0.0.1:{hub.hub.http_port}/api/v1/live?type=telemetry&token="
        async with (
            websockets.connect(base + owner.api.headers["Authorization"][7:]) as owner_ws,
            websockets.connect(base + intruder.api.headers["Authorization"][7:]) as intruder_ws,
        ):
            assert orjson.loads(await owner_ws.recv())["type"] == "hello"
            assert orjson.loads(await intruder_ws.recv())["type"] == "hello"
            for device in (theirs, mine):
                async with DeviceClient(device["id"], device["secret"], host=hub.mqtt_host, port=hub.mqtt_port) as dev:
                    await dev.send_telemetry({"temperature_c": 21.5})
                    await dev.flush(5)
            owner_sees = orjson.loads(await asyncio.wait_for(owner_ws.recv(), 5))
            intruder_sees = orjson.loads(await asyncio.wait_for(intruder_ws.recv(), 5))
            assert owner_sees["device_id"] == theirs["id"]
            # The intruder's first event is their own device's, sent after the owner's: the owner's was withheld.
            assert intruder_sees["device_id"] == mine["id"]
            with contextlib.suppress(TimeoutError):
                extra = orjson.loads(await asyncio.wait_for(owner_ws.recv(), 0.5))
                assert extra["device_id"] == theirs["id"]
        # A wrong token is refused before the stream opens (a close before accept is an HTTP 403).
        with pytest.raises(websockets.InvalidStatus, match="403"):
            async with websockets.connect(base + "wrong"):
                pass
