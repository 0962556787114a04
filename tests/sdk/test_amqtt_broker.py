"""The SDK against an in-process amqtt broker (what the hub embeds, MQTT 3.1.1), stopped and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson
from amqtt.broker import Broker

from tests.sdk.helpers import flatten
from tests.support.services import free_port
from tosplus.sdk import DeviceClient


@contextlib.asynccontextmanager
async def amqtt_broker(port: int) -> AsyncIterator[Broker]:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield broker
    finally:
        await broker.shutdown()


def points(seen: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    return flatten([orjson.loads(p) for t, p in seen if t.endswith("/telemetry")])


async def collect(port: int, into: list[tuple[str, bytes]], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"fake-hub-{port}") as hub:
        await hub.subscribe("tos/v1/#", qos=1)
        ready.set()
        async for message in hub.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            into.append((message.topic.value, payload))


async def test_buffered_telemetry_survives_a_broker_restart() -> None:
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    port = free_port()
    seen: list[tuple[str, bytes]] = []
    calls: list[dict[str, object]] = []
    dev = DeviceClient("amqtt-dev", "s", port=port, reconnect_min_s=0.5, reconnect_max_s=0.5)
    async with amqtt_broker(port):
        ready = asyncio.Event()
        hub = asyncio.create_task(collect(port, seen, ready))
        await ready.wait()
        desired = orjson.dumps({"version": 1, "state": {"volume": 5}})
        async with aiomqtt.Client("127.0.0.1", port) as admin:
            await admin.publish("tos/v1/amqtt-dev/twin/desired", desired, qos=1, retain=True)
        await dev.start()
        dev.on_desired(lambda changed, full: calls.append(changed))
        await dev.wait_connected(5)
        await dev.send_telemetry({"seq": 0})
        await dev.flush(5)
    hub.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await hub
    try:
        for _ in range(100):
            if not dev.connected:
                break
            await asyncio.sleep(0.02)
        assert not dev.connected
        for seq in range(1, 6):
            await dev.send_telemetry({"seq": seq})
        async with amqtt_broker(port):
            ready = asyncio.Event()
            hub = asyncio.create_task(collect(port, seen, ready))
            await ready.wait()
            await dev.flush(10)
            for _ in range(50):
                if len(points(seen)) >= 6:
                    break
                await asyncio.sleep(0.02)
            await dev.close()
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await hub
    finally:
        await dev.close()
    seqs = [p["values"]["seq"] for p in points(seen)]
    assert seqs == list(range(6))
    assert calls == [{"volume": 5}]
    assert ("tos/v1/amqtt-dev/twin/reported", b'{"volume":5}') in seen
