"""Presence timeouts, retention, command expiry and replayed answers."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.support.hubs import HubUnderTest, next_message

SENSOR_MODEL = {
    "id": "tos:test-sensor",
    "title": "Test sensor",
    "tos:inactivityTimeoutS": 5,
    "tos:retentionDays": 1,
    "properties": {"level": {"type": "number"}},
    "actions": {"ping": {}},
}


async def test_inactivity_timeout_per_product(hub: HubUnderTest) -> None:
    await hub.api.post(
        "/api/v1/products",
        json={"id": "test-sensor", "name": "Sensor", "manufacturer": "T", "thing_model": SENSOR_MODEL},
    )
    quick = await hub.create_device("test-sensor")
    slow = await hub.create_device("parking-sensor")  # a much longer timeout in its model
    for device, topic_values in ((quick, {"level": 1.5}), (slow, {"occupied": True})):
        async with hub.device_client(device) as client:
            await client.publish(f"tos/v1/{device['id']}/telemetry", orjson.dumps(topic_values), qos=1)
            await hub.settle()
    presence = hub.hub.presence
    assert presence.is_online(quick["id"]) and presence.is_online(slow["id"])
    gone = presence.sweep(int(time.time() * 1000) + 6_000)
    assert gone == [quick["id"]]
    assert not presence.is_online(quick["id"]) and presence.is_online(slow["id"])
    await presence.flush()
    assert (await hub.api.get(f"/api/v1/devices/{quick['id']}")).json()["online"] is False


async def test_retention_per_product(hub: HubUnderTest) -> None:
    await hub.api.post(
        "/api/v1/products",
        json={"id": "test-sensor", "name": "Sensor", "manufacturer": "T", "thing_model": SENSOR_MODEL},
    )
    device = await hub.create_device("test-sensor")
    now = int(time.time() * 1000)
    old, fresh = now - 2 * 86_400_000, now - 60_000
    async with hub.device_client(device) as client:
        batch = [{"ts": old, "values": {"level": 1.0}}, {"ts": fresh, "values": {"level": 2.0}}]
        await client.publish(f"tos/v1/{device['id']}/telemetry", orjson.dumps(batch), qos=1)
        await hub.settle()
    query = {"key": "level", "from": 0}
    assert len((await hub.api.get(f"/api/v1/devices/{device['id']}/telemetry", params=query)).json()["points"]) == 2
    assert await hub.hub.apply_retention() == 1
    points = (await hub.api.get(f"/api/v1/devices/{device['id']}/telemetry", params=query)).json()["points"]
    assert points == [{"ts": fresh, "value": 2}]


async def test_persistent_command_expires(hub: HubUnderTest) -> None:
    device = await hub.create_device("smart-tv")
    queued = (
        await hub.api.post(
            f"/api/v1/devices/{device['id']}/commands",
            json={"name": "key_press", "params": {"key": "ok"}, "persistent": True, "expires_in_s": 0.2},
        )
    ).json()
    assert queued["state"] == "QUEUED"
    await asyncio.sleep(0.3)
    assert await hub.hub.commands.expire_due() == 1
    expired = (await hub.api.get(f"/api/v1/devices/{device['id']}/commands/{queued['id']}")).json()
    assert expired["state"] == "EXPIRED" and expired["completed_at"]


async def test_replayed_answer_is_a_dead_letter_and_hub_topics_are_not_the_devices(
    any_hub: HubUnderTest,
) -> None:
    hub = any_hub
    device = await hub.create_device("smart-tv")
    did = device["id"]
    async with hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/commands/+", qos=1)
        await client.publish(f"tos/v1/{did}/status", b"online", qos=1)
        await hub.settle()
        sending = asyncio.create_task(hub.api.post(f"/api/v1/devices/{did}/commands", json={"name": "reboot"}))
        command = await next_message(client, "")
        answer = orjson.dumps({"ok": True, "result": {"rebooting": True}})
        await client.publish(f"{command.topic.value}/response", answer, qos=1)
        assert (await sending).json()["state"] == "SUCCEEDED"
        await client.publish(f"{command.topic.value}/response", answer, qos=1)  # replayed
        # A device may not publish on the hub's topics: its retained desired state stays the hub's.
        await hub.api.patch(f"/api/v1/devices/{did}/twin/desired", json={"volume": 10})
        await client.publish(
            f"tos/v1/{did}/twin/desired", b'{"version": 99, "state": {"volume": 100}}', qos=1, retain=True
        )
        await client.publish(f"tos/v1/{did}/gossip", b"hello", qos=1)  # not a protocol topic at all
        await client.publish(f"tos/v1/{did}/status", b"", qos=1, retain=True)  # clearing is not an error
        await hub.settle()
    letters = (await hub.api.get(f"/api/v1/devices/{did}/dead-letters")).json()["items"]
    reasons = [item["reason"] for item in letters]
    assert len(reasons) == 1 and "already SUCCEEDED" in reasons[0], reasons
    async with hub.device_client(device) as again:
        await again.subscribe(f"tos/v1/{did}/twin/desired", qos=1)
        desired = orjson.loads((await next_message(again, "/twin/desired")).payload)
    assert desired == {"version": 1, "state": {"volume": 10}}
