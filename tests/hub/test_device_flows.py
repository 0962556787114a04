"""Devices speaking MQTT to a real hub: telemetry, dead letters, twins, commands, presence.

Each test runs on both deployments: embedded broker + SQLite, and Mosquitto (dynamic security) + PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import orjson
import pytest

from tests.support.hubs import HubUnderTest, next_message


async def test_telemetry_in_every_shape_is_stored_and_queryable(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("thermostat")
    now = int(time.time() * 1000)
    async with any_hub.device_client(device) as client:
        topic = f"tos/v1/{device['id']}/telemetry"
        await client.publish(topic, orjson.dumps({"temperature_c": 20.5}), qos=1)
        await client.publish(topic, orjson.dumps({"ts": now - 120_000, "values": {"temperature_c": 18.0}}), qos=1)
        batch = [{"ts": now - 60_000 + i * 1000, "values": {"temperature_c": 19.0 + i}} for i in range(3)]
        await client.publish(topic, orjson.dumps(batch), qos=1)
        await any_hub.settle()
    did = device["id"]
    latest = (await any_hub.api.get(f"/api/v1/devices/{did}/telemetry/latest")).json()["values"]
    assert latest["temperature_c"]["value"] == 20.5
    points = (
        await any_hub.api.get(
            f"/api/v1/devices/{did}/telemetry", params={"key": "temperature_c", "from": now - 300_000}
        )
    ).json()["points"]
    assert [p["value"] for p in points] == [18.0, 19.0, 20.0, 21.0, 20.5]
    agg = (
        await any_hub.api.get(
            f"/api/v1/devices/{did}/telemetry",
            params={
                "key": "temperature_c",
                "from": now - 120_000,
                "to": now - 60_000 + 3000,
                "agg": "avg",
                "interval": "60s",
            },
        )
    ).json()["points"]
    assert agg == [{"ts": now - 120_000, "value": 18.0, "count": 1}, {"ts": now - 60_000, "value": 20.0, "count": 3}]
    count = (
        await any_hub.api.get(
            f"/api/v1/devices/{did}/telemetry",
            params={"key": "temperature_c", "from": now - 300_000, "agg": "max", "interval": "1h"},
        )
    ).json()["points"]
    assert count[0]["value"] == 21.0


@pytest.mark.parametrize(
    ("topic_suffix", "payload", "reason"),
    [
        ("telemetry", b'{"temperature_c": ', "not valid JSON"),
        ("telemetry", b'{"temperature_c": "warm"}', "must be a number"),
        ("telemetry", b'{"colour": 1}', "not a property"),
        ("telemetry", b'{"target_c": 99}', "above the maximum"),
        ("twin/reported", b"[1, 2]", "must be a JSON object"),
        ("events/unknown", b"{}", "not an event"),
    ],
)
async def test_refused_messages_become_dead_letters_and_the_device_is_told(
    hub: HubUnderTest, topic_suffix: str, payload: bytes, reason: str
) -> None:
    device = await hub.create_device("thermostat")
    did = device["id"]
    async with hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/errors", qos=1)
        await client.publish(f"tos/v1/{did}/{topic_suffix}", payload, qos=1)
        error = await next_message(client, "/errors")
    told = orjson.loads(error.payload)
    assert reason in told["reason"] and told["topic"].endswith(topic_suffix)
    letters = (await hub.api.get(f"/api/v1/devices/{did}/dead-letters")).json()
    assert letters["total"] == 1
    assert reason in letters["items"][0]["reason"] and letters["items"][0]["payload"] == payload.decode()
    latest = (await hub.api.get(f"/api/v1/devices/{did}/telemetry/latest")).json()["values"]
    assert latest == {}


async def test_dead_letters_on_both_deployments(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("thermostat")
    did = device["id"]
    limit = any_hub.hub.settings.max_payload_bytes
    async with any_hub.device_client(device) as client:
        await client.publish(f"tos/v1/{did}/telemetry", b"\xff\xfe not json", qos=1)
        await client.publish(f"tos/v1/{did}/telemetry", b"[" + b"1," * limit + b"1]", qos=1)
        await client.publish(f"tos/v1/{did}/telemetry", b'{"temperature_c": 21}', qos=1)
        await any_hub.settle()
    letters = (await any_hub.api.get(f"/api/v1/devices/{did}/dead-letters")).json()
    reasons = [item["reason"] for item in letters["items"]]
    assert letters["total"] == 2, reasons
    assert any("over the limit" in r for r in reasons) and any("not valid JSON" in r for r in reasons)
    binary = next(item for item in letters["items"] if "not valid JSON" in item["reason"])
    assert binary["payload"] is None and binary["payload_base64"]
    oversized = next(item for item in letters["items"] if "over the limit" in item["reason"])
    assert oversized["truncated"] is True and oversized["size"] > limit
    latest = (await any_hub.api.get(f"/api/v1/devices/{did}/telemetry/latest")).json()["values"]
    assert latest["temperature_c"]["value"] == 21


async def test_flood_is_rate_limited_and_counted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.hubs import running_hub

    async with running_hub(tmp_path, device_rate_per_s=5, device_rate_burst=10, rate_limit_grace_s=0) as hub:
        device = await hub.create_device("smart-plug")
        async with hub.device_client(device) as client:
            for i in range(40):
                await client.publish(f"tos/v1/{device['id']}/telemetry", orjson.dumps({"power_w": i}), qos=1)
            await hub.settle()
        letters = (await hub.api.get(f"/api/v1/devices/{device['id']}/dead-letters")).json()
        stored = (
            await hub.api.get(f"/api/v1/devices/{device['id']}/telemetry", params={"key": "power_w", "from": "-1h"})
        ).json()["points"]
        assert len(stored) + letters["total"] == 40
        assert 10 <= len(stored) < 20
        assert all("rate" in item["reason"] for item in letters["items"])


async def test_twin_desired_delta_reported_and_versions(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("light")
    did = device["id"]
    url = f"/api/v1/devices/{did}/twin"
    async with any_hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/twin/#", qos=1)
        response = await any_hub.api.patch(f"{url}/desired", json={"on": True, "brightness": 40})
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        desired = orjson.loads((await next_message(client, "/twin/desired")).payload)
        assert desired == {"version": 1, "state": {"on": True, "brightness": 40}}
        delta = orjson.loads((await next_message(client, "/twin/delta")).payload)
        assert delta["state"] == {"on": True, "brightness": 40}
        await client.publish(f"tos/v1/{did}/twin/reported", orjson.dumps({"on": True, "brightness": 40}), qos=1)
        await any_hub.settle()
    twin = (await any_hub.api.get(url)).json()
    assert twin["reported"]["state"] == {"on": True, "brightness": 40} and twin["delta"] == {}
    assert set(twin["desired"]["updated"]) == {"on", "brightness"}
    stale = await any_hub.api.patch(f"{url}/desired", json={"brightness": 10}, headers={"If-Match": '"0"'})
    assert stale.status_code == 412
    fresh = await any_hub.api.patch(f"{url}/desired", json={"brightness": 10}, headers={"If-Match": '"1"'})
    assert fresh.status_code == 200 and fresh.json()["delta"] == {"brightness": 10}
    read_only = await any_hub.api.patch(f"{url}/desired", json={"power_w": 3})
    assert read_only.status_code == 422 and "read-only" in read_only.json()["detail"]


async def test_offline_device_gets_latest_desired_on_reconnect(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("light")
    did = device["id"]
    await any_hub.api.patch(f"/api/v1/devices/{did}/twin/desired", json={"brightness": 70})
    await any_hub.api.patch(f"/api/v1/devices/{did}/twin/desired", json={"brightness": 75, "on": True})
    async with any_hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/twin/desired", qos=1)
        desired = orjson.loads((await next_message(client, "/twin/desired")).payload)
    assert desired == {"version": 2, "state": {"brightness": 75, "on": True}}


async def _answer_commands(client: aiomqtt.Client, did: str, answer: dict) -> None:  # type: ignore[type-arg]
    async for message in client.messages:
        if "/commands/" in message.topic.value and not message.topic.value.endswith("/response"):
            await client.publish(f"{message.topic.value}/response", orjson.dumps(answer), qos=1)


async def test_command_round_trip_and_failure(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("smart-tv")
    did = device["id"]
    async with any_hub.device_client(device) as client:
        await client.publish(f"tos/v1/{did}/status", b"online", qos=1, retain=True)
        await client.subscribe(f"tos/v1/{did}/commands/+", qos=1)
        await any_hub.settle()
        responder = asyncio.create_task(_answer_commands(client, did, {"ok": True, "result": {"channel": 5}}))
        sent = await any_hub.api.post(
            f"/api/v1/devices/{did}/commands", json={"name": "set_channel", "params": {"channel": 5}}
        )
        responder.cancel()
        assert sent.status_code == 200, sent.text
        assert sent.json()["state"] == "SUCCEEDED" and sent.json()["result"] == {"channel": 5}

        refuser = asyncio.create_task(_answer_commands(client, did, {"ok": False, "error": "no signal"}))
        failed = (
            await any_hub.api.post(
                f"/api/v1/devices/{did}/commands", json={"name": "set_channel", "params": {"channel": 7}}
            )
        ).json()
        refuser.cancel()
        assert failed["state"] == "FAILED" and failed["error"] == "no signal"

        silent = (
            await any_hub.api.post(
                f"/api/v1/devices/{did}/commands",
                json={"name": "set_channel", "params": {"channel": 9}, "timeout_s": 0.5},
            )
        ).json()
        assert silent["state"] == "TIMED_OUT"
        invalid = await any_hub.api.post(
            f"/api/v1/devices/{did}/commands", json={"name": "set_channel", "params": {"channel": "five"}}
        )
        assert invalid.status_code == 422
        await client.publish(f"tos/v1/{did}/status", b"", qos=1, retain=True)
    history = (await any_hub.api.get(f"/api/v1/devices/{did}/commands")).json()["items"]
    assert [c["state"] for c in history] == ["TIMED_OUT", "FAILED", "SUCCEEDED"]


async def test_many_concurrent_commands_all_finish(any_hub: HubUnderTest) -> None:
    """Concurrent commands share group commits on the way out and back; each still gets its own answer."""
    device = await any_hub.create_device("smart-tv")
    did = device["id"]
    async with any_hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/commands/+", qos=1)
        await client.publish(f"tos/v1/{did}/status", b"online", qos=1)
        await any_hub.settle()

        async def echo() -> None:
            async for message in client.messages:
                if "/commands/" in message.topic.value:
                    params = orjson.loads(message.payload)["params"]
                    await client.publish(
                        f"{message.topic.value}/response", orjson.dumps({"ok": True, "result": params}), qos=1
                    )

        responder = asyncio.create_task(echo())
        results = await asyncio.gather(
            *(
                any_hub.api.post(
                    f"/api/v1/devices/{did}/commands", json={"name": "set_channel", "params": {"channel": n}}
                )
                for n in range(1, 41)
            )
        )
        responder.cancel()
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    assert [r.json()["result"]["channel"] for r in results] == list(range(1, 41))
    history = (await any_hub.api.get(f"/api/v1/devices/{did}/commands")).json()["items"]
    assert len(history) == 40 and {c["state"] for c in history} == {"SUCCEEDED"}


async def test_persistent_command_waits_for_reconnect(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("smart-tv")
    did = device["id"]
    offline = (
        await any_hub.api.post(f"/api/v1/devices/{did}/commands", json={"name": "key_press", "params": {"key": "ok"}})
    ).json()
    assert offline["state"] == "FAILED" and "offline" in offline["error"]
    queued = await any_hub.api.post(
        f"/api/v1/devices/{did}/commands",
        json={"name": "key_press", "params": {"key": "ok"}, "persistent": True, "expires_in_s": 60},
    )
    assert queued.status_code == 202 and queued.json()["state"] == "QUEUED"
    expiring = (
        await any_hub.api.post(
            f"/api/v1/devices/{did}/commands",
            json={"name": "key_press", "params": {"key": "back"}, "persistent": True, "expires_in_s": 60},
        )
    ).json()
    cancel = await any_hub.api.post(f"/api/v1/devices/{did}/commands/{expiring['id']}/cancel")
    assert cancel.json()["state"] == "CANCELED"
    command_id = queued.json()["id"]
    async with any_hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/commands/+", qos=1)
        responder = asyncio.create_task(_answer_commands(client, did, {"ok": True, "result": "pressed"}))
        await client.publish(f"tos/v1/{did}/status", b"online", qos=1)
        for _ in range(100):
            state = (await any_hub.api.get(f"/api/v1/devices/{did}/commands/{command_id}")).json()["state"]
            if state == "SUCCEEDED":
                break
            await asyncio.sleep(0.05)
        responder.cancel()
        assert state == "SUCCEEDED"


async def test_presence_from_birth_and_last_will(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("smartwatch")
    did = device["id"]
    client = any_hub.device_client(device, keepalive=1)
    await client.__aenter__()
    await client.publish(f"tos/v1/{did}/status", b"online", qos=1, retain=True)
    await any_hub.settle()
    assert (await any_hub.api.get(f"/api/v1/devices/{did}")).json()["online"] is True
    # Drop the socket without DISCONNECT: the broker publishes the last will.
    client._client._sock_close()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if not (await any_hub.api.get(f"/api/v1/devices/{did}")).json()["online"]:
            break
    assert (await any_hub.api.get(f"/api/v1/devices/{did}")).json()["online"] is False
    with __import__("contextlib").suppress(Exception):
        await client.__aexit__(None, None, None)


async def test_wrong_secret_and_other_devices_topics_are_refused(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("light")
    other = await any_hub.create_device("light")
    with pytest.raises(aiomqtt.MqttError):
        async with any_hub.device_client(device, password="wrong"):
            pass
    async with any_hub.device_client(device) as client:
        await client.publish(f"tos/v1/{other['id']}/telemetry", orjson.dumps({"brightness": 1}), qos=1)
        await any_hub.settle()
    latest = (await any_hub.api.get(f"/api/v1/devices/{other['id']}/telemetry/latest")).json()["values"]
    assert latest == {}


async def _can_connect(hub: HubUnderTest, device: dict, secret: str) -> bool:  # type: ignore[type-arg]
    try:
        async with hub.device_client(device, password=secret):
            return True
    except aiomqtt.MqttError:
        return False


async def test_credentials_lifecycle_reaches_the_broker(any_hub: HubUnderTest) -> None:
    device = await any_hub.create_device("light")
    did, first = device["id"], device["secret"]
    assert await _can_connect(any_hub, device, first)
    second = (await any_hub.api.post(f"/api/v1/devices/{did}/credentials/rotate")).json()["secret"]
    assert not await _can_connect(any_hub, device, first)
    assert await _can_connect(any_hub, device, second)
    await any_hub.api.post(f"/api/v1/devices/{did}/credentials/revoke")
    assert not await _can_connect(any_hub, device, second)
    # Enabling a revoked device does not bring an old secret back.
    await any_hub.api.patch(f"/api/v1/devices/{did}", json={"enabled": False})
    await any_hub.api.patch(f"/api/v1/devices/{did}", json={"enabled": True})
    assert not await _can_connect(any_hub, device, second)
    third = (await any_hub.api.post(f"/api/v1/devices/{did}/credentials/rotate")).json()["secret"]
    assert await _can_connect(any_hub, device, third)
    await any_hub.api.patch(f"/api/v1/devices/{did}", json={"enabled": False})
    assert not await _can_connect(any_hub, device, third)
    await any_hub.api.patch(f"/api/v1/devices/{did}", json={"enabled": True})
    assert await _can_connect(any_hub, device, third)
    await any_hub.api.delete(f"/api/v1/devices/{did}")
    assert not await _can_connect(any_hub, device, third)


async def test_large_bulk_creation_reaches_the_broker_in_the_background(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import production_hub

    async with production_hub(tmp_path) as hub:
        response = await hub.api.post("/api/v1/devices/bulk", json={"product_id": "parking-sensor", "count": 600})
        assert response.status_code == 201
        body = response.json()
        assert body["broker_accounts_pending"] == 600
        for _ in range(600):
            if (await hub.api.get("/api/v1/hub")).json()["devices"]["broker_accounts_pending"] == 0:
                break
            await asyncio.sleep(0.1)
        last = body["devices"][-1]
        assert await _can_connect(hub, last, last["secret"])
