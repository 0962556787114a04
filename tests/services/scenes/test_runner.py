"""The scene runner against a real hub: devices speak MQTT, the hub stores and publishes as in production.

The tests with ``any_hub`` run on both deployments (embedded broker + SQLite, Mosquitto + PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from tests.support.hubs import HubUnderTest
from tosplus.errors import InvalidInput
from tosplus.services.scenes.runner import Action, ActionResult, outcome, run_actions

Reports = Callable[[dict[str, Any]], list[dict[str, Any]]]
Answer = Callable[[dict[str, Any]], dict[str, Any]]


def echo(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A light that does what it is told."""
    return [state]


async def wait_online(hub: Any, device_id: str) -> None:
    ready = asyncio.Event()
    remove = hub.bus.listen("presence", lambda e: e.device_id == device_id and e.data["online"] and ready.set())
    try:
        if not hub.presence.is_online(device_id):
            async with asyncio.timeout(5):
                await ready.wait()
    finally:
        remove()


@contextlib.asynccontextmanager
async def online_device(
    test_hub: HubUnderTest, product: str = "light", *, reports: Reports | None = None, answer: Answer | None = None
) -> AsyncIterator[dict[str, Any]]:
    """A connected device: ``reports(desired)`` gives what it reports (in order), ``answer(command)`` its reply."""
    device = await test_hub.create_device(product)
    did = device["id"]
    async with test_hub.device_client(device) as client:
        await client.subscribe(f"tos/v1/{did}/twin/desired", qos=1)
        await client.subscribe(f"tos/v1/{did}/commands/+", qos=1)

        async def serve() -> None:
            async for message in client.messages:
                topic = message.topic.value
                if topic.endswith("/twin/desired") and message.payload and reports is not None:
                    for i, report in enumerate(reports(orjson.loads(message.payload)["state"])):
                        if i:
                            await asyncio.sleep(0.2)  # a dimmer ramping: separate reports
                        await client.publish(f"tos/v1/{did}/twin/reported", orjson.dumps(report), qos=1)
                elif "/commands/" in topic and answer is not None:
                    reply = answer(orjson.loads(message.payload))
                    await client.publish(f"{topic}/response", orjson.dumps(reply), qos=1)

        task = asyncio.create_task(serve())
        await client.publish(f"tos/v1/{did}/status", b"online", qos=1, retain=True)
        await wait_online(test_hub.hub, did)
        try:
            yield device
        finally:
            task.cancel()


def listener_count(test_hub: HubUnderTest) -> int:
    return sum(len(listeners) for listeners in test_hub.hub.bus._listeners.values())


async def test_two_lights_that_apply_are_both_applied(any_hub: HubUnderTest) -> None:
    async with online_device(any_hub, reports=echo) as one, online_device(any_hub, reports=echo) as two:
        before = listener_count(any_hub)
        results = await run_actions(
            any_hub.hub,
            [
                {"device_id": one["id"], "desired": {"brightness": 20, "on": True}},
                {"device_id": two["id"], "desired": {"on": False}},
            ],
        )
        assert listener_count(any_hub) == before
    assert results == [
        ActionResult(one["id"], "applied", "brightness 20 and on true reported"),
        ActionResult(two["id"], "applied", "on false reported"),
    ]
    assert outcome(results) == "applied"


async def test_offline_light_keeps_desired_state_while_the_other_applies(any_hub: HubUnderTest) -> None:
    asleep = await any_hub.create_device("light")
    async with online_device(any_hub, reports=echo) as awake:
        actions = [{"device_id": d["id"], "desired": {"brightness": 35}} for d in (awake, asleep)]
        started = time.monotonic()
        results = await run_actions(any_hub.hub, actions, timeout_s=1)
    assert time.monotonic() - started < 1, "an offline device is reported at once, not after the timeout"
    assert [r.status for r in results] == ["applied", "offline"]
    assert results[1].detail == "offline (never connected); kept as desired state, applied when it returns"
    assert outcome(results) == "partial"
    twin = (await any_hub.api.get(f"/api/v1/devices/{asleep['id']}/twin")).json()
    assert twin["desired"]["state"] == {"brightness": 35}


async def test_device_that_reports_another_value_is_refused_at_the_deadline(hub: HubUnderTest) -> None:
    def capped(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"brightness": min(state["brightness"], 50)}]

    async with online_device(hub, reports=capped) as light:
        started = time.monotonic()
        [result] = await run_actions(hub.hub, [{"device_id": light["id"], "desired": {"brightness": 80}}], timeout_s=1)
    assert result == ActionResult(light["id"], "refused", "device reported brightness 50, not 80")
    assert 0.9 < time.monotonic() - started < 1.6


async def test_intermediate_values_are_waited_through(hub: HubUnderTest) -> None:
    def ramp(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"brightness": 60}, {"brightness": 40}, state]

    async with online_device(hub, reports=ramp) as light:
        [result] = await run_actions(hub.hub, [{"device_id": light["id"], "desired": {"brightness": 20}}], timeout_s=2)
    assert result == ActionResult(light["id"], "applied", "brightness 20 reported")


async def test_silent_device_times_out_within_the_timeout(any_hub: HubUnderTest) -> None:
    def half(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"on": state["on"]}]  # never gets to the brightness

    async with online_device(any_hub) as silent, online_device(any_hub, reports=half) as partly:
        before = listener_count(any_hub)
        started = time.monotonic()
        results = await run_actions(
            any_hub.hub,
            [
                {"device_id": silent["id"], "desired": {"on": True}},
                {"device_id": partly["id"], "desired": {"on": True, "brightness": 10}},
            ],
            timeout_s=1,
        )
        elapsed = time.monotonic() - started
        assert listener_count(any_hub) == before
    assert 0.9 < elapsed < 1.6
    assert results == [
        ActionResult(silent["id"], "timeout", "no answer within 1 s"),
        ActionResult(partly["id"], "timeout", "on true reported; no report of brightness within 1 s"),
    ]
    assert outcome(results) == "failed"


async def test_commands_applied_or_refused_with_the_devices_words(any_hub: HubUnderTest) -> None:
    def blink(command: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "result": {"blinked": command["params"]["times"]}}

    def overheated(command: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": "overheated"}

    async with online_device(any_hub, answer=blink) as good, online_device(any_hub, answer=overheated) as hot:
        results = await run_actions(
            any_hub.hub,
            [{"device_id": d["id"], "command": {"name": "blink", "params": {"times": 3}}} for d in (good, hot)],
        )
    assert results == [
        ActionResult(good["id"], "applied", 'blink done; device answered {"blinked":3}'),
        ActionResult(hot["id"], "refused", "device answered: overheated"),
    ]
    history = (await any_hub.api.get(f"/api/v1/devices/{hot['id']}/commands")).json()["items"]
    assert [(c["state"], c["error"]) for c in history] == [("FAILED", "overheated")]


async def test_command_nobody_answers_times_out(hub: HubUnderTest) -> None:
    async with online_device(hub) as silent:
        started = time.monotonic()
        [result] = await run_actions(
            hub.hub, [{"device_id": silent["id"], "command": {"name": "blink", "params": {"times": 1}}}], timeout_s=1
        )
    assert result == ActionResult(silent["id"], "timeout", "no answer within 1 s")
    assert time.monotonic() - started < 1.6


async def test_values_the_model_refuses_never_reach_the_device(hub: HubUnderTest) -> None:
    async with online_device(hub, reports=echo, answer=lambda c: {"ok": True}) as light:
        did = light["id"]
        results = await run_actions(
            hub.hub,
            [
                {"device_id": did, "desired": {"brightness": 140}},
                {"device_id": did, "desired": {"power_w": 3}},
                {"device_id": did, "command": {"name": "blink", "params": {"times": 99}}},
            ],
        )
    assert [r.status for r in results] == ["refused"] * 3
    assert "maximum 100" in results[0].detail and "nothing was sent" in results[0].detail
    assert "read-only" in results[1].detail
    assert "maximum 20" in results[2].detail
    twin = (await hub.api.get(f"/api/v1/devices/{did}/twin")).json()
    assert twin["desired"]["version"] == 0
    assert (await hub.api.get(f"/api/v1/devices/{did}/commands")).json()["items"] == []


async def test_mixed_scene_is_partial_and_says_why_for_each(any_hub: HubUnderTest) -> None:
    tv = await any_hub.create_device("smart-tv")
    gone = await any_hub.create_device("light")
    assert (await any_hub.api.delete(f"/api/v1/devices/{gone['id']}")).status_code == 204
    async with online_device(any_hub, reports=echo) as light:
        results = await run_actions(
            any_hub.hub,
            [
                Action(light["id"], desired={"on": True}),
                {"device_id": gone["id"], "desired": {"on": True}},
                {"device_id": tv["id"], "command": {"name": "key_press", "params": {"key": "ok"}}},
                {"device_id": tv["id"], "command": {"name": "key_press", "params": {"key": "ok"}, "persistent": True}},
            ],
            timeout_s=1,
        )
    assert [r.status for r in results] == ["applied", "refused", "refused", "offline"]
    assert results[1].detail == "the device no longer exists"
    assert results[2].detail.startswith("offline (never connected); key_press was not sent")
    assert "key_press is queued and sent when it returns (until " in results[3].detail
    assert outcome(results) == "partial"


async def test_device_deleted_or_gone_offline_or_overridden_while_waiting(hub: HubUnderTest) -> None:
    """Each ends its wait at once with what happened, not with a timeout."""
    devices = []
    for _ in range(3):
        async with online_device(hub) as device:  # online, then silent (no last will on a clean disconnect)
            devices.append(device)
    deleted, sleeper, overridden = devices

    async def meanwhile() -> None:
        await asyncio.sleep(0.3)
        await hub.api.delete(f"/api/v1/devices/{deleted['id']}")
        async with hub.device_client(sleeper) as client:
            await client.publish(f"tos/v1/{sleeper['id']}/status", b"offline", qos=1, retain=True)
        await hub.api.patch(f"/api/v1/devices/{overridden['id']}/twin/desired", json={"brightness": 10})

    started = time.monotonic()
    results, _ = await asyncio.gather(
        run_actions(hub.hub, [{"device_id": d["id"], "desired": {"brightness": 90}} for d in devices], timeout_s=3),
        meanwhile(),
    )
    assert time.monotonic() - started < 2.5
    assert results[0] == ActionResult(deleted["id"], "refused", "the device no longer exists")
    assert results[1].status == "offline" and results[1].detail.startswith("went offline at ")
    assert results[2] == ActionResult(
        overridden["id"], "refused", "desired brightness was set to 10 by another change meanwhile"
    )


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("lamp", "actions[0] must be"),
        ({"desired": {"on": True}}, "device_id must be a non-empty string"),
        ({"device_id": "lamp-1"}, "exactly one of 'desired' and 'command'"),
        ({"device_id": "lamp-1", "desired": {"on": True}, "command": {"name": "blink"}}, "exactly one"),
        ({"device_id": "lamp-1", "desired": {}}, "must be a non-empty object"),
        ({"device_id": "lamp-1", "desired": {"on": True}, "colour": "red"}, "unknown key 'colour'"),
        ({"device_id": "lamp-1", "command": {"params": {}}}, "command name must be a non-empty string"),
        ({"device_id": "lamp-1", "command": {"name": "blink", "persistent": "yes"}}, "persistent must be"),
    ],
)
def test_malformed_actions_are_refused_with_clear_words(action: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match=words.replace("[", r"\[").replace("]", r"\]")):
        Action.parse(action, "actions[0]")


async def test_bad_scene_touches_no_device(hub: HubUnderTest) -> None:
    light = await hub.create_device("light")
    conflicting = [{"device_id": light["id"], "desired": {"on": v}} for v in (True, False)]
    with pytest.raises(InvalidInput, match="two actions set on"):
        await run_actions(hub.hub, conflicting)
    with pytest.raises(InvalidInput, match=r"actions\[1\]"):
        await run_actions(hub.hub, [{"device_id": light["id"], "desired": {"on": True}}, {"device_id": 7}])
    assert (await hub.api.get(f"/api/v1/devices/{light['id']}/twin")).json()["desired"]["version"] == 0


def test_outcome() -> None:
    ok, off = ActionResult("a", "applied", ""), ActionResult("b", "offline", "")
    assert outcome([ok, ok]) == "applied"
    assert outcome([ok, off]) == "partial"
    assert outcome([off]) == "failed"
    assert outcome([]) == "applied"
