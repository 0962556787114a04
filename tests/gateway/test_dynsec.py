"""Provisioning device accounts into a real Mosquitto (dynamic-security plugin), checked with real clients."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from aiomqtt import ProtocolVersion

from tests.support.mosquitto import MosquittoInstance, running_mosquitto
from tests.support.services import free_port
from tosplus.errors import ConfigError, Conflict, InvalidInput, NotFound
from tosplus.gateway import topics
from tosplus.gateway.dynsec import COMMAND_TOPIC, RESPONSE_TOPIC, DynsecAdmin

HUB_USER, HUB_PASSWORD = "tosplus-hub", "hub-password-1"
A, A_SECRET = "sensor-a", "secret-of-a"
B, B_SECRET = "sensor-b", "secret-of-b"
REFUSED = (4, 5, 134, 135)  # CONNACK: bad credentials / not authorised (MQTT 3.1.1 and 5)


def admin_of(broker: MosquittoInstance) -> DynsecAdmin:
    return DynsecAdmin(host=broker.host, port=broker.port, username=broker.admin_user, password=broker.admin_password)


def client(
    broker: MosquittoInstance, user: str, password: str, protocol: ProtocolVersion = ProtocolVersion.V311
) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username=user, password=password, protocol=protocol, timeout=5)


def granted(codes: Any) -> bool:
    return all(getattr(code, "value", code) < 0x80 for code in codes)


async def refused_code(
    broker: MosquittoInstance, user: str, password: str, protocol: ProtocolVersion = ProtocolVersion.V311
) -> int | None:
    """The CONNACK failure code for these credentials, or None when the broker lets them in."""
    try:
        async with client(broker, user, password, protocol):
            return None
    except aiomqtt.MqttCodeError as exc:
        return int(getattr(exc.rc, "value", exc.rc) or 0)


async def messages_until(subscriber: aiomqtt.Client, last: Callable[[aiomqtt.Message], bool]) -> list[aiomqtt.Message]:
    """Everything the subscriber receives up to and including the first message ``last`` accepts."""
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(5):
        async for message in subscriber.messages:
            got.append(message)
            if last(message):
                return got
    raise AssertionError("unreachable")


async def raw_commands(broker: MosquittoInstance, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send dynamic-security commands the way mosquitto_ctrl does, without the module under test."""
    async with client(broker, broker.admin_user, broker.admin_password) as admin:
        await admin.subscribe(RESPONSE_TOPIC, qos=1)
        await admin.publish(COMMAND_TOPIC, orjson.dumps({"commands": list(commands)}), qos=1)
        async with asyncio.timeout(5):
            async for message in admin.messages:
                assert isinstance(message.payload, bytes)
                responses: list[dict[str, Any]] = orjson.loads(message.payload)["responses"]
                return responses
    raise AssertionError("unreachable")


@dataclass
class Provisioned:
    broker: MosquittoInstance
    admin: DynsecAdmin


@pytest.fixture
async def provisioned(private_mosquitto: MosquittoInstance) -> AsyncIterator[Provisioned]:
    """Hub account plus devices A and B, with *every* default access denied (so the roles must carry all)."""
    async with admin_of(private_mosquitto) as admin:
        await admin.ensure_hub_account(HUB_USER, HUB_PASSWORD)
        await admin.set_default_access(publish_client_receive=False)
        await admin.upsert_devices([(A, A_SECRET), (B, B_SECRET)])
        yield Provisioned(private_mosquitto, admin)


@pytest.fixture
async def hub_subscriber(provisioned: Provisioned) -> AsyncIterator[aiomqtt.Client]:
    async with client(provisioned.broker, HUB_USER, HUB_PASSWORD) as hub:
        for flt in topics.HUB_SUBSCRIPTIONS:
            assert granted(await hub.subscribe(flt, qos=1)), flt
        yield hub


async def test_hub_account_is_provisioned(provisioned: Provisioned) -> None:
    broker = provisioned.broker
    async with client(broker, HUB_USER, HUB_PASSWORD) as hub:
        for flt in topics.HUB_SUBSCRIPTIONS:
            assert granted(await hub.subscribe(flt, qos=1)), flt
            assert granted(await hub.subscribe(f"$share/hub/{flt}", qos=1)), flt
        assert not granted(await hub.subscribe("#", qos=1))
        assert not granted(await hub.subscribe("other/+", qos=1))
        # The hub may administer the plugin itself.
        assert granted(await hub.subscribe(RESPONSE_TOPIC, qos=1))
        await hub.publish(COMMAND_TOPIC, orjson.dumps({"commands": [{"command": "listRoles"}]}), qos=1)
        [answer] = await messages_until(hub, lambda m: m.topic.matches(RESPONSE_TOPIC))
        assert isinstance(answer.payload, bytes)
        assert "tosplus-hub" in answer.payload.decode()
    assert await provisioned.admin.list_devices() == [A, B]


async def test_ensure_hub_account_is_idempotent_and_keeps_the_hub_connected(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    async with client(broker, HUB_USER, HUB_PASSWORD) as hub:
        await admin.ensure_hub_account(HUB_USER, HUB_PASSWORD)
        await hub.publish(topics.command(A, "r1"), b"{}", qos=1)  # still connected: nothing was reset
    await admin.ensure_hub_account(HUB_USER, "hub-password-2")
    assert await refused_code(broker, HUB_USER, HUB_PASSWORD) in REFUSED
    assert await refused_code(broker, HUB_USER, "hub-password-2") is None


async def test_ensure_hub_account_denies_by_default(private_mosquitto: MosquittoInstance) -> None:
    async with admin_of(private_mosquitto) as admin:
        await admin.set_default_access(publish_client_send=True, subscribe=True)
        await admin.ensure_hub_account(HUB_USER, HUB_PASSWORD)
        [answer] = await raw_commands(private_mosquitto, [{"command": "getDefaultACLAccess"}])
    access = {acl["acltype"]: acl["allow"] for acl in answer["data"]["acls"]}
    assert access["publishClientSend"] is False
    assert access["subscribe"] is False


async def test_device_connects_with_its_secret_and_not_with_another(provisioned: Provisioned) -> None:
    broker = provisioned.broker
    assert await refused_code(broker, A, A_SECRET) is None
    assert await refused_code(broker, A, "wrong") in REFUSED
    assert await refused_code(broker, A, B_SECRET) in REFUSED
    assert await refused_code(broker, "nobody", "x") in REFUSED


async def test_device_telemetry_reaches_the_hub_but_not_on_anothers_topic(
    provisioned: Provisioned, hub_subscriber: aiomqtt.Client
) -> None:
    async with client(provisioned.broker, A, A_SECRET) as device:
        await device.publish(topics.telemetry(B), b'{"spoofed": 1}', qos=1)
        await device.publish(topics.status(B), b"online", qos=1)
        await device.publish(topics.telemetry(A), b'{"t": 21.5}', qos=1)
    got = await messages_until(hub_subscriber, lambda m: m.topic.matches(topics.telemetry(A)))
    # Per-publisher order is kept, so had the spoofed messages passed they would have arrived first.
    assert [(m.topic.value, m.payload) for m in got] == [(topics.telemetry(A), b'{"t": 21.5}')]


async def test_device_subscribing_everything_sees_nothing_of_another(provisioned: Provisioned) -> None:
    broker = provisioned.broker
    async with client(broker, A, A_SECRET) as device_a:
        assert not granted(await device_a.subscribe("tos/v1/#", qos=1))
        assert not granted(await device_a.subscribe("tos/v1/+/commands/+", qos=1))
        assert not granted(await device_a.subscribe(f"tos/v1/{B}/#", qos=1))
        assert granted(await device_a.subscribe(topics.device_filter(A), qos=1))
        async with client(broker, B, B_SECRET) as device_b:
            await device_b.publish(topics.telemetry(B), b"b-telemetry", qos=1)
        async with client(broker, HUB_USER, HUB_PASSWORD) as hub:
            await hub.publish(topics.command(B, "r1"), b"for b", qos=1)
            await hub.publish(topics.desired(B), b"for b", qos=1, retain=True)
            await hub.publish(topics.command(A, "r2"), b"for a", qos=1)
        got = await messages_until(device_a, lambda m: m.payload == b"for a")
    assert [m.topic.value for m in got] == [topics.command(A, "r2")]


async def test_set_password_replaces_the_secret(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    async with client(broker, A, A_SECRET) as device:
        await admin.set_password(A, "new-secret-of-a")
        with pytest.raises(aiomqtt.MqttError):  # Mosquitto dropped the session that used the old secret
            await asyncio.sleep(0.2)
            await device.publish(topics.telemetry(A), b"{}", qos=1)
    assert await refused_code(broker, A, A_SECRET) in REFUSED
    assert await refused_code(broker, A, "new-secret-of-a") is None
    with pytest.raises(NotFound):
        await admin.set_password("sensor-zz", "x")


async def test_disable_refuses_and_drops_the_device_and_enable_lets_it_back(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    async with client(broker, A, A_SECRET) as device:
        await admin.disable_device(A)
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.sleep(0.2)
            await device.publish(topics.telemetry(A), b"{}", qos=1)
    assert await refused_code(broker, A, A_SECRET) in REFUSED
    assert await refused_code(broker, B, B_SECRET) is None
    await admin.enable_device(A)
    assert await refused_code(broker, A, A_SECRET) is None
    with pytest.raises(NotFound):
        await admin.disable_device("sensor-zz")


async def test_remove_devices_removes_accounts_and_roles(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    await admin.remove_devices([A])
    assert await refused_code(broker, A, A_SECRET) in REFUSED
    assert await refused_code(broker, B, B_SECRET) is None
    assert await admin.list_devices() == [B]
    [role] = await raw_commands(broker, [{"command": "getRole", "rolename": f"dev-{A}"}])
    assert role["error"] == "Role not found"
    await admin.remove_devices([A, "sensor-never"])  # absent devices are no error
    # A removed device can come back.
    await admin.upsert_devices([(A, "again")])
    assert await refused_code(broker, A, "again") is None


async def test_upsert_is_idempotent_and_updates_secrets(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    await admin.upsert_devices([(A, A_SECRET), (B, B_SECRET)])
    await admin.upsert_devices([(A, A_SECRET), (B, B_SECRET)])
    assert await admin.list_devices() == [A, B]
    assert await refused_code(broker, A, A_SECRET) is None
    await admin.upsert_devices([(B, "rotated"), ("sensor-c", "secret-of-c")])
    assert await admin.list_devices() == [A, B, "sensor-c"]
    assert await refused_code(broker, B, B_SECRET) in REFUSED
    assert await refused_code(broker, B, "rotated") is None
    assert await refused_code(broker, "sensor-c", "secret-of-c") is None


async def test_upsert_recreates_a_device_whose_client_was_deleted(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    await raw_commands(broker, [{"command": "deleteClient", "username": A}])  # role dev-A is left over
    await admin.upsert_devices([(A, A_SECRET)])
    assert await admin.list_devices() == [A, B]
    assert await refused_code(broker, A, A_SECRET) is None


async def test_bad_ids_and_foreign_clients_are_refused_before_any_change(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    for bad in ("+", "#", "a/b", "", broker.admin_user, HUB_USER):
        with pytest.raises(InvalidInput):
            await admin.upsert_devices([("sensor-ok", "s"), (bad, "s")])
    with pytest.raises(InvalidInput):
        await admin.upsert_devices([("sensor-ok", "s"), ("sensor-ok", "t")])
    with pytest.raises(InvalidInput):
        await admin.upsert_devices([("sensor-ok", "")])
    await raw_commands(broker, [{"command": "createClient", "username": "legacy-app", "password": "p"}])
    with pytest.raises(Conflict, match="legacy-app"):
        await admin.upsert_devices([("sensor-ok", "s"), ("legacy-app", "s")])
    with pytest.raises(Conflict):
        await admin.remove_devices(["legacy-app"])
    with pytest.raises(Conflict):
        await admin.disable_device("legacy-app")
    assert await refused_code(broker, "legacy-app", "p") is None
    assert await admin.list_devices() == [A, B]  # nothing of the refused calls happened


async def test_mqtt5_clients_and_a_shared_subscription(provisioned: Provisioned) -> None:
    broker = provisioned.broker
    v5 = ProtocolVersion.V5
    assert await refused_code(broker, A, "wrong", v5) in REFUSED
    async with client(broker, HUB_USER, HUB_PASSWORD, v5) as hub:
        assert granted(await hub.subscribe("$share/hub/tos/v1/+/telemetry", qos=1))
        async with client(broker, A, A_SECRET, v5) as device:
            assert not granted(await device.subscribe("tos/v1/#", qos=1))
            assert granted(await device.subscribe(topics.device_filter(A), qos=1))
            await device.publish(topics.telemetry(B), b"spoofed", qos=1)
            await device.publish(topics.telemetry(A), b"v5", qos=1)
        got = await messages_until(hub, lambda m: m.payload == b"v5")
    assert [m.topic.value for m in got] == [topics.telemetry(A)]


async def test_bulk_upsert_of_2000_devices(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    creds = [(f"bulk-{i:05d}", f"secret-{i}") for i in range(2000)]
    started = time.monotonic()
    await admin.upsert_devices(creds)
    elapsed = time.monotonic() - started
    # Mosquitto 2.0.11 rewrites its JSON after every command: ~20 s here, nearly all of it broker time.
    assert elapsed < 120, f"2,000 devices took {elapsed:.1f} s"
    devices = await admin.list_devices()
    assert len(devices) == 2002
    device_id, secret = random.choice(creds)
    assert await refused_code(broker, device_id, secret) is None
    assert await refused_code(broker, device_id, "wrong") in REFUSED


async def test_admin_session_comes_back_after_the_broker_dropped_it(provisioned: Provisioned) -> None:
    broker, admin = provisioned.broker, provisioned.admin
    # A client taking over the admin's client id makes Mosquitto drop the admin's session.
    async with aiomqtt.Client(
        broker.host, broker.port, username=broker.admin_user, password=broker.admin_password, identifier=admin.client_id
    ):
        await asyncio.sleep(0.3)
    assert await admin.list_devices() == [A, B]
    await admin.disable_device(B)
    assert await refused_code(broker, B, B_SECRET) in REFUSED


async def test_wrong_admin_credentials_are_a_config_error(private_mosquitto: MosquittoInstance) -> None:
    broker = private_mosquitto
    admin = DynsecAdmin(host=broker.host, port=broker.port, username=broker.admin_user, password="wrong")
    expected = f"the broker at {broker.host}:{broker.port} refused the hub's admin credentials"
    with pytest.raises(ConfigError, match=expected):
        async with admin:
            pass


async def test_unreachable_broker_is_a_config_error() -> None:
    admin = DynsecAdmin(host="127.0.0.1", port=free_port(), username="admin", password="x")
    with pytest.raises(ConfigError, match="could not reach"):
        async with admin:
            pass


async def test_broker_without_the_plugin_is_a_config_error(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path, dynsec=False) as broker:
        admin = admin_of(broker)
        admin.probe_timeout_s = 1.0
        with pytest.raises(ConfigError, match="is mosquitto_dynamic_security loaded"):
            async with admin:
                pass
