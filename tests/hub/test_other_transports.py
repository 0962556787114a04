"""The HTTP device API, CoAP, and the live WebSocket stream."""

from __future__ import annotations

import asyncio

import aiocoap
import httpx
import orjson
import websockets

from tests.support.hubs import ADMIN_TOKEN, HubUnderTest, running_hub
from tests.support.services import free_port


async def test_http_device_api(hub: HubUnderTest) -> None:
    device = await hub.create_device("air-quality-station")
    did = device["id"]
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), auth=(did, device["secret"])) as dev:
        ok = await dev.post("/device/v1/telemetry", content=orjson.dumps({"no2_ug_m3": 41.0}))
        assert ok.status_code == 202, ok.text
        bad = await dev.post("/device/v1/telemetry", content=b'{"no2_ug_m3": "lots"}')
        assert bad.status_code == 422 and "must be a number" in bad.json()["detail"]
        big = await dev.post("/device/v1/telemetry", content=b"[" + b"1," * 40_000 + b"1]")
        assert big.status_code == 413
        reported = await dev.post("/device/v1/twin/reported", content=orjson.dumps({"no2_ug_m3": 41.0}))
        assert reported.status_code == 202
        desired = (await dev.get("/device/v1/twin/desired")).json()
        assert desired == {"version": 0, "state": {}, "delta": {}}
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), auth=(did, "wrong")) as impostor:
        refused = await impostor.post("/device/v1/telemetry", content=b'{"no2_ug_m3": 1}')
        assert refused.status_code == 401
    latest = (await hub.api.get(f"/api/v1/devices/{did}/telemetry/latest")).json()["values"]
    assert latest["no2_ug_m3"]["value"] == 41.0
    letters = (await hub.api.get(f"/api/v1/devices/{did}/dead-letters")).json()
    assert letters["total"] == 1  # the 413 was refused before reading the body; the 422 is kept


async def test_http_device_polls_and_answers_commands(hub: HubUnderTest) -> None:
    device = await hub.create_device("street-light")
    did = device["id"]
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), auth=(did, device["secret"])) as dev:
        await dev.post("/device/v1/status", content=b"online")

        async def device_loop() -> None:
            for _ in range(100):
                items = (await dev.get("/device/v1/commands")).json()["items"]
                if items:
                    rid = items[0]["request_id"]
                    answer = await dev.post(
                        f"/device/v1/commands/{rid}/response",
                        content=orjson.dumps({"ok": True, "result": {"done": True}}),
                    )
                    assert answer.status_code == 202
                    return
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(device_loop())
        sent = (await hub.api.post(f"/api/v1/devices/{did}/commands", json={"name": "reboot"})).json()
        await poller
    assert sent["state"] == "SUCCEEDED" and sent["result"] == {"done": True}


async def test_coap_telemetry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    async with running_hub(tmp_path, coap_port=port) as hub:
        device = await hub.create_device("parking-sensor")
        did, secret = device["id"], device["secret"]
        client = await aiocoap.Context.create_client_context()
        try:
            base = f"coap://127.0.0.1:{port}/tos/v1/{did}"
            ok = await client.request(
                aiocoap.Message(code=aiocoap.POST, uri=f"{base}/telemetry?s={secret}", payload=b'{"occupied": true}')
            ).response
            assert ok.code == aiocoap.CHANGED
            bad = await client.request(
                aiocoap.Message(code=aiocoap.POST, uri=f"{base}/telemetry?s={secret}", payload=b'{"occupied": 3}')
            ).response
            assert bad.code == aiocoap.BAD_REQUEST and b"boolean" in bad.payload
            wrong = await client.request(
                aiocoap.Message(code=aiocoap.POST, uri=f"{base}/telemetry?s=nope", payload=b'{"occupied": true}')
            ).response
            assert wrong.code == aiocoap.UNAUTHORIZED
            desired = await client.request(
                aiocoap.Message(code=aiocoap.GET, uri=f"{base}/twin/desired?s={secret}")
            ).response
            assert orjson.loads(desired.payload)["version"] == 0
        finally:
            await client.shutdown()
        latest = (await hub.api.get(f"/api/v1/devices/{did}/telemetry/latest")).json()["values"]
        assert latest["occupied"]["value"] is True


async def test_live_stream_filters_by_device(hub: HubUnderTest) -> None:
    watched = await hub.create_device("light")
    other = await hub.create_device("light")
    ws_url = f"ws://127.0.0.1:{hub.hub.http_port}/api/v1/live?device_id={watched['id']}&token={ADMIN_TOKEN}"
    async with websockets.connect(ws_url) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "hello"
        async with hub.device_client(other) as c_other, hub.device_client(watched) as c_watched:
            await c_other.publish(f"tos/v1/{other['id']}/telemetry", b'{"brightness": 1}', qos=1)
            await c_watched.publish(f"tos/v1/{watched['id']}/telemetry", b'{"brightness": 2}', qos=1)
        seen = []
        async with asyncio.timeout(5):
            while not any(e["type"] == "telemetry" for e in seen):
                seen.append(orjson.loads(await ws.recv()))
    assert {e["device_id"] for e in seen} == {watched["id"]}
    telemetry = next(e for e in seen if e["type"] == "telemetry")
    assert telemetry["data"]["values"] == {"brightness": 2}


async def test_live_stream_needs_a_token(hub: HubUnderTest) -> None:
    url = f"ws://127.0.0.1:{hub.hub.http_port}/api/v1/live"
    try:
        async with websockets.connect(url) as ws:
            await ws.recv()
        raise AssertionError("the stream must refuse an anonymous client")
    except (websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidStatus):
        pass
