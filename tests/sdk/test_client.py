"""The device SDK against the real Mosquitto, with a fake hub on the other side."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.sdk.helpers import fake_hub, new_device_id, proxy_to_mosquitto
from tests.support.services import require
from tosplus.sdk import DeviceClient, DeviceError, SqliteOutbox, outbox_path
from tosplus.sdk.client import _refused_credentials

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.3}


@pytest.mark.parametrize("protocol", [3, 5])
async def test_telemetry_events_and_status_arrive(protocol: int) -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()
    async with fake_hub(device_id) as hub:
        dev = DeviceClient(device_id, "secret", host=host, port=port, protocol=protocol, **FAST)
        async with dev:
            await dev.wait_connected(5)
            assert dev.connected
            await hub.wait_for(lambda m: m.suffix == "status" and m.payload == b"online")
            await dev.send_telemetry({"temperature_c": 21.5}, ts_ms=1_700_000_000_000)
            await dev.send_telemetry({"temperature_c": 21.7})
            await dev.send_event("button_pressed", {"button": "main"})
            await dev.flush(5)
            assert dev.pending == 0
            await hub.wait_until(lambda: len(hub.points(device_id)) == 2)
            first, second = hub.points(device_id)
            assert first == {"ts": 1_700_000_000_000, "values": {"temperature_c": 21.5}}
            assert second["values"] == {"temperature_c": 21.7} and second["ts"] > first["ts"]
            event = await hub.wait_for(lambda m: m.suffix == "events/button_pressed")
            assert event.json() == {"button": "main"}
        # a clean close says offline (retained)
        offline = await hub.wait_for(lambda m: m.suffix == "status" and m.payload == b"offline")
        assert offline.device_id == device_id


async def test_offline_buffer_delivers_in_order_after_reconnect() -> None:
    device_id = new_device_id()
    async with fake_hub(device_id) as hub, proxy_to_mosquitto() as proxy:
        async with DeviceClient(device_id, "secret", port=proxy.port, **FAST) as dev:
            await dev.wait_connected(5)
            await dev.send_telemetry({"seq": 0})
            await dev.flush(5)
            await proxy.cut()
            for _ in range(50):
                if not dev.connected:
                    break
                await asyncio.sleep(0.02)
            assert not dev.connected
            for seq in range(1, 31):
                await dev.send_telemetry({"seq": seq})
            await dev.send_event("button_pressed", {"seq": 31})
            assert dev.pending == 31
            with pytest.raises(DeviceError):
                await dev.flush(0.2)
            await proxy.restore()
            await dev.flush(10)
            assert dev.connects >= 2
        await hub.wait_until(lambda: len(hub.points(device_id)) >= 31)
        seqs = [p["values"]["seq"] for p in hub.points(device_id)]
        assert seqs == list(range(31))
        # the backlog went as a batch (one JSON array), not as 30 messages
        assert len(hub.matching(device_id, "telemetry")) == 2
        ordered = [m for m in hub.messages if m.device_id == device_id and m.suffix.startswith(("tel", "ev"))]
        assert ordered[-1].suffix == "events/button_pressed"


async def test_offline_buffer_survives_a_restart(tmp_path: Path) -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()
    async with fake_hub(device_id) as hub, proxy_to_mosquitto() as proxy:
        await proxy.cut()  # nothing listens there: the device starts offline
        async with DeviceClient(device_id, "secret", port=proxy.port, buffer_dir=tmp_path, **FAST) as dev:
            for seq in range(20):
                await dev.send_telemetry({"seq": seq})
            await asyncio.sleep(0.2)
            assert not dev.connected and dev.pending == 20
        # the process "restarts": the messages are on disk
        stored = SqliteOutbox(outbox_path(tmp_path, device_id))
        assert len(stored) == 20
        stored.close()
        async with DeviceClient(device_id, "s", host=host, port=port, buffer_dir=tmp_path, **FAST) as dev:
            await dev.send_telemetry({"seq": 20})
            await dev.flush(10)
        await hub.wait_until(lambda: len(hub.points(device_id)) >= 21)
        seqs = [p["values"]["seq"] for p in hub.points(device_id)]
        assert seqs == list(range(21))
        stored = SqliteOutbox(outbox_path(tmp_path, device_id))
        assert len(stored) == 0
        stored.close()


async def test_desired_handler_gets_changed_keys_and_reported_follows() -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def apply(changed: dict[str, Any], full: dict[str, Any]) -> None:
        calls.append((changed, full))

    def reported(hub_messages: list[Any]) -> list[dict[str, Any]]:
        return [m.json() for m in hub_messages]

    async with fake_hub(device_id) as hub:
        # desired set while the device is offline: retained, so it gets it when it connects
        first = {"version": 1, "state": {"volume": 10, "input": "hdmi1"}}
        await hub.publish(device_id, "twin/desired", first, retain=True)
        async with DeviceClient(device_id, "secret", host=host, port=port, **FAST) as dev:
            dev.on_desired(apply)
            await hub.wait_until(lambda: len(hub.matching(device_id, "twin/reported")) >= 1)
            assert calls == [({"volume": 10, "input": "hdmi1"}, {"volume": 10, "input": "hdmi1"})]
            assert reported(hub.matching(device_id, "twin/reported")) == [{"volume": 10, "input": "hdmi1"}]
            assert dev.desired == {"volume": 10, "input": "hdmi1"} and dev.desired_version == 1

            second = {"version": 2, "state": {"volume": 25, "input": "hdmi1"}}
            await hub.publish(device_id, "twin/desired", second, retain=True)
            await hub.publish(device_id, "twin/delta", {"version": 2, "state": {"volume": 25}})
            await hub.wait_until(lambda: len(hub.matching(device_id, "twin/reported")) >= 2)
            assert calls[1][0] == {"volume": 25}
            assert reported(hub.matching(device_id, "twin/reported"))[1] == {"volume": 25}

            # an older version is ignored; a newer delta is applied
            await hub.publish(device_id, "twin/delta", {"version": 1, "state": {"volume": 99}})
            await hub.publish(device_id, "twin/delta", {"version": 3, "state": {"muted": True}})
            await hub.wait_until(lambda: len(hub.matching(device_id, "twin/reported")) >= 3)
            assert [c[0] for c in calls] == [first["state"], {"volume": 25}, {"muted": True}]
            assert calls[2][1] == {"volume": 25, "input": "hdmi1", "muted": True}
            assert reported(hub.matching(device_id, "twin/reported"))[2] == {"muted": True}


async def test_desired_handler_that_reports_itself_or_returns_what_it_accepted() -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()

    async def clamp(changed: dict[str, Any], full: dict[str, Any]) -> Any:
        if "volume" in changed:
            await dev.report({"volume": min(changed["volume"], 80)})
            return None
        return {k: v for k, v in changed.items() if k == "muted"}  # accepts only 'muted'

    async with fake_hub(device_id) as hub, DeviceClient(device_id, "s", host=host, port=port, **FAST) as dev:
        dev.on_desired(clamp)
        await dev.wait_connected(5)
        await hub.publish(device_id, "twin/delta", {"version": 1, "state": {"volume": 95}})
        first = await hub.wait_for(lambda m: m.suffix == "twin/reported")
        assert first.json() == {"volume": 80}
        await hub.publish(device_id, "twin/delta", {"version": 2, "state": {"muted": True, "app": "x"}})
        await hub.wait_until(lambda: len(hub.matching(device_id, "twin/reported")) >= 2)
        await asyncio.sleep(0.1)
        got = [m.json() for m in hub.matching(device_id, "twin/reported")]
        assert got == [{"volume": 80}, {"muted": True}]
        assert dev.reported == {"volume": 80, "muted": True}


async def test_commands_dispatch_by_name() -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()

    async def set_channel(params: dict[str, Any]) -> dict[str, Any]:
        return {"channel": params["channel"]}

    def fail(params: dict[str, Any]) -> None:
        raise ValueError("the lamp is broken")

    async with (
        fake_hub(device_id) as hub,
        DeviceClient(device_id, "secret", host=host, port=port, **FAST) as dev,
    ):
        dev.on_command("set_channel", set_channel)
        dev.on_command("blink", fail)
        await dev.wait_connected(5)
        ok = await hub.command(device_id, "set_channel", {"channel": 7})
        bad = await hub.command(device_id, "blink", {"times": 3})
        unknown = await hub.command(device_id, "self_destruct")
        assert await hub.response(device_id, ok) == {"ok": True, "result": {"channel": 7}}
        assert await hub.response(device_id, bad) == {"ok": False, "error": "the lamp is broken"}
        answer = await hub.response(device_id, unknown)
        assert answer["ok"] is False and "unknown command" in answer["error"]
        await hub.publish(device_id, "commands/garbage", b"not json")
        assert (await hub.response(device_id, "garbage"))["ok"] is False


async def test_last_will_offline_on_abrupt_drop_then_online_again() -> None:
    device_id = new_device_id()
    async with (
        fake_hub(device_id) as hub,
        proxy_to_mosquitto() as proxy,
        DeviceClient(device_id, "secret", port=proxy.port, keepalive=5, **FAST) as dev,
    ):
        await dev.wait_connected(5)
        await hub.wait_for(lambda m: m.suffix == "status" and m.payload == b"online")
        await proxy.cut()
        will = await hub.wait_for(lambda m: m.suffix == "status" and m.payload == b"offline", 5)
        assert will.device_id == device_id
        await proxy.restore()
        await dev.wait_connected(5)
        statuses = [b"online", b"offline", b"online"]
        await hub.wait_until(lambda: [m.payload for m in hub.matching(device_id, "status")] == statuses)


async def test_errors_topic_reaches_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    host, port = require("mosquitto")
    device_id = new_device_id()
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with (
        fake_hub(device_id) as hub,
        DeviceClient(device_id, "secret", host=host, port=port, **FAST) as dev,
    ):
        dev.on_error(seen.put_nowait)
        await dev.wait_connected(5)
        with caplog.at_level(logging.WARNING, logger="tosplus.sdk"):
            doc = {"topic": f"tos/v1/{device_id}/telemetry", "reason": "'x' is not a property", "at": 1}
            await hub.publish(device_id, "errors", doc)
            assert await asyncio.wait_for(seen.get(), 5) == doc
        assert "'x' is not a property" in caplog.text


async def test_misuse_is_refused() -> None:
    assert _refused_credentials(aiomqtt.MqttCodeError(5)) and _refused_credentials(aiomqtt.MqttCodeError(134))
    assert not _refused_credentials(aiomqtt.MqttCodeError(7)) and not _refused_credentials(aiomqtt.MqttError("x"))
    with pytest.raises(DeviceError):
        DeviceClient("a/b", "s")
    dev = DeviceClient("fine", "s")
    with pytest.raises(DeviceError):
        await dev.send_telemetry({"x": 1})
    async with DeviceClient(new_device_id(), "s", port=1, **FAST) as dev:
        with pytest.raises(DeviceError):
            await dev.send_telemetry({})
        with pytest.raises(DeviceError):
            await dev.send_event("a/b", {})
        with pytest.raises(DeviceError):
            await dev.send_telemetry({"x": object()})
        with pytest.raises(DeviceError):
            await dev.wait_connected(0.1)
