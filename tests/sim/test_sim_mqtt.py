"""Simulated devices, the fleet runner and the home runner against the real Mosquitto (no hub: a fake one)."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from tests.sdk.helpers import fake_hub, new_device_id
from tests.support.services import require
from tosplus.catalog import PRODUCT_IDS
from tosplus.sim.behaviours import SmartTv, Thermostat
from tosplus.sim.fleet import run_devices
from tosplus.sim.home import HOME_PLAN, run_home
from tosplus.sim.provision import DeviceCredentials

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.3}


async def test_thermostat_drifts_toward_the_desired_target() -> None:
    host, port = require("mosquitto")
    device_id = new_device_id("thermostat")
    stop = asyncio.Event()
    sim = Thermostat(device_id, "s", host=host, port=port, period_s=0.05, speed=600, seed=5, client_options=FAST)
    sim.state.update(temperature_c=17.0, target_c=17.0, mode="off")
    async with fake_hub(device_id) as hub:
        await hub.publish(
            device_id, "twin/desired", {"version": 1, "state": {"target_c": 24.0, "mode": "heat"}}, retain=True
        )
        task = asyncio.create_task(sim.run(stop))
        try:
            await hub.wait_for(lambda m: m.suffix == "twin/reported" and m.json().get("target_c") == 24.0)
            await hub.wait_for(lambda m: m.suffix == "twin/reported" and m.json().get("hvac_running") is True)

            def temperatures() -> list[float]:
                return [p["values"]["temperature_c"] for p in hub.points(device_id)]

            await hub.wait_until(lambda: len(temperatures()) >= 2 and max(temperatures()) > 19.0, 10)
            readings = temperatures()
            assert readings[-1] > readings[0]
            assert all(16.0 < t < 25.0 for t in readings)
        finally:
            stop.set()
            await task


async def test_tv_changes_channel_on_command_and_reboots() -> None:
    host, port = require("mosquitto")
    device_id = new_device_id("tv")
    stop = asyncio.Event()
    sim = SmartTv(device_id, "s", host=host, port=port, period_s=0.1, client_options=FAST)
    sim.reboot_time_s = 0.1
    async with fake_hub(device_id) as hub:
        task = asyncio.create_task(sim.run(stop))
        try:
            await hub.wait_for(lambda m: m.suffix == "status" and m.payload == b"online")
            request = await hub.command(device_id, "set_channel", {"channel": 42})
            assert await hub.response(device_id, request) == {"ok": True, "result": {"channel": 42}}
            reported = await hub.wait_for(
                lambda m: m.suffix == "twin/reported" and "channel" in m.json() and m.json()["channel"] == 42
            )
            assert reported.json().get("input", "tv") == "tv"
            await hub.publish(device_id, "twin/delta", {"version": 1, "state": {"volume": 33}})
            await hub.wait_for(lambda m: m.suffix == "twin/reported" and m.json().get("volume") == 33)
            bad = await hub.command(device_id, "set_channel", {"channel": "five"})
            answer = await hub.response(device_id, bad)
            assert answer["ok"] is False and "channel" in answer["error"]

            reboot = await hub.command(device_id, "reboot", {})
            assert (await hub.response(device_id, reboot))["result"]["rebooting"] is True
            statuses = [b"online", b"offline", b"online"]
            await hub.wait_until(lambda: [m.payload for m in hub.matching(device_id, "status")] == statuses)
            assert sim.reboots == 1
        finally:
            stop.set()
            await task


async def test_fleet_connects_every_device_and_each_sends_telemetry() -> None:
    host, port = require("mosquitto")
    run = uuid.uuid4().hex[:8]
    creds = [DeviceCredentials(f"test-fleet-{run}-{i}", "s", "light") for i in range(25)]
    stop = asyncio.Event()
    output = io.StringIO()
    async with fake_hub(*(c.id for c in creds)) as hub:
        task = asyncio.create_task(
            run_devices(
                creds,
                host=host,
                port=port,
                period_s=0.3,
                stop=stop,
                progress=True,
                concurrency=10,
                client_options=FAST,
                console=Console(file=output, width=100),
            )
        )
        try:

            def senders() -> set[str]:
                return {m.device_id for m in hub.messages if m.suffix == "telemetry"}

            await hub.wait_until(lambda: len(senders()) == len(creds), 15)
        finally:
            stop.set()
            stats = await task
    assert stats.connected == 25 and stats.failed == 0 and stats.connect_s is not None
    assert stats.telemetry >= 25
    assert "connecting" in output.getvalue()


def fake_api(products: list[str], run: str, calls: list[tuple[str, str, Any]]) -> httpx.MockTransport:
    """The three hub endpoints the home runner uses, as the hub engineer specified them."""
    created: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.path, body))
        if request.headers.get("authorization") != "Bearer admin-token":
            return httpx.Response(401, json={"title": "Unauthorized", "detail": "bad token"})
        if request.method == "GET" and request.url.path == "/api/v1/hub":
            return httpx.Response(200, json={"mqtt": {"host": "0.0.0.0", "port": 1883}, "version": "test"})
        if request.method == "GET" and request.url.path == "/api/v1/products":
            return httpx.Response(200, json={"items": [{"id": p} for p in products]})
        if request.method == "POST" and request.url.path == "/api/v1/devices":
            assert body is not None
            device_id = f"test-home-{run}-{len(created) + 1}"
            created.append(device_id)
            return httpx.Response(
                201,
                json={
                    "id": device_id,
                    "secret": f"secret-{device_id}",
                    "product_id": body["product_id"],
                    "name": body["name"],
                    "labels": body["labels"],
                },
            )
        return httpx.Response(404, json={"title": "Not found"})

    return httpx.MockTransport(handle)


async def test_home_is_created_once_then_reused(tmp_path: Path) -> None:
    require("mosquitto")
    run = uuid.uuid4().hex[:8]
    ids = [f"test-home-{run}-{i}" for i in range(1, len(HOME_PLAN) + 1)]
    calls: list[tuple[str, str, Any]] = []
    state = tmp_path / "simulated-home.json"
    async with fake_hub(*ids) as hub, httpx.AsyncClient(transport=fake_api(list(PRODUCT_IDS), run, calls)) as http:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_home(
                "http://127.0.0.1:9",
                "admin-token",
                stop=stop,
                state_file=state,
                period_s=0.2,
                http=http,
                client_options=FAST,
            )
        )
        try:
            await hub.wait_until(lambda: {m.device_id for m in hub.messages if m.suffix == "telemetry"} == set(ids), 15)
        finally:
            stop.set()
            sims = await task
    assert len(sims) == len(HOME_PLAN) == 10
    posts = [body for method, path, body in calls if method == "POST"]
    assert [p["product_id"] for p in posts] == [p.product_id for p in HOME_PLAN]
    assert {"product_id": "light", "name": "Kitchen light", "labels": {"site": "home", "room": "kitchen"}} in posts
    saved = json.loads(state.read_text())
    assert saved["api_url"] == "http://127.0.0.1:9" and len(saved["devices"]) == 10
    assert saved["devices"]["tv"]["id"] in ids and saved["devices"]["tv"]["secret"].startswith("secret-")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # a second run reuses every device: no POST
    calls.clear()
    stop = asyncio.Event()
    stop.set()
    async with httpx.AsyncClient(transport=fake_api(list(PRODUCT_IDS), run, calls)) as http:
        again = await run_home("http://127.0.0.1:9", "admin-token", stop=stop, state_file=state, http=http)
    assert [s.device_id for s in again] == [s.device_id for s in sims]
    assert not [c for c in calls if c[0] == "POST"]


async def test_home_skips_products_the_hub_does_not_have(tmp_path: Path) -> None:
    calls: list[tuple[str, str, Any]] = []
    stop = asyncio.Event()
    stop.set()
    async with httpx.AsyncClient(transport=fake_api(["light"], "x", calls)) as http:
        sims = await run_home("http://127.0.0.1:9", "admin-token", stop=stop, state_file=tmp_path / "s.json", http=http)
    assert [s.product_id for s in sims] == ["light"] * 3
    assert pytest.approx(len([c for c in calls if c[0] == "POST"])) == 3
