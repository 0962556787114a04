"""The embedded amqtt broker, driven by real MQTT clients (aiomqtt, and raw sockets where a client library
would hide what is being tested: exact CONNACK codes, a socket dropped without DISCONNECT, silence)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from tests.support.services import free_port
from tosplus.errors import ConfigError
from tosplus.gateway import embedded_amqtt, topic_index, topics
from tosplus.gateway.embedded import EmbeddedBroker

HOST = "127.0.0.1"
HUB_USER = "tosplus-hub"
HUB_PASSWORD = "hub-secret-123"
HUB_CLIENT_ID = "tosplus-hub"
SECRETS = {"dev-a": "secret-a", "dev-b": "secret-b"}
MAX_PAYLOAD = 1024

# CONNACK return codes of MQTT 3.1.1
ACCEPTED, BAD_PROTOCOL, ID_REJECTED, BAD_CREDENTIALS, NOT_AUTHORIZED = 0, 1, 2, 4, 5
CLOSED = -1  # the broker closed the socket without a CONNACK


async def check_device(username: str, password: str) -> bool:
    expected = SECRETS.get(username)
    return expected is not None and hmac.compare_digest(expected, password)


def make_broker(
    port: int | None = None, authenticate: Callable[[str, str], Awaitable[bool]] = check_device
) -> EmbeddedBroker:
    return EmbeddedBroker(
        host=HOST,
        port=free_port() if port is None else port,
        authenticate=authenticate,
        hub_username=HUB_USER,
        hub_password=HUB_PASSWORD,
        max_payload_bytes=MAX_PAYLOAD,
    )


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with make_broker() as running:
        yield running


def device(broker: EmbeddedBroker, device_id: str, **kwargs: Any) -> aiomqtt.Client:
    options: dict[str, Any] = {"identifier": device_id, "username": device_id}
    options["password"] = SECRETS.get(device_id)
    return aiomqtt.Client(HOST, broker.port, timeout=5, **(options | kwargs))


def hub(broker: EmbeddedBroker, **kwargs: Any) -> aiomqtt.Client:
    options: dict[str, Any] = {"identifier": HUB_CLIENT_ID, "username": HUB_USER, "password": HUB_PASSWORD}
    return aiomqtt.Client(HOST, broker.port, timeout=5, **(options | kwargs))


async def next_message(client: aiomqtt.Client, within: float = 3.0) -> aiomqtt.Message:
    return await asyncio.wait_for(client.messages.__anext__(), within)


async def no_message(client: aiomqtt.Client, within: float = 0.3) -> None:
    with contextlib.suppress(TimeoutError):
        message = await next_message(client, within)
        pytest.fail(f"unexpected message on {message.topic}: {message.payload!r}")


def refused(codes: tuple[int, ...] | list[paho.ReasonCode]) -> bool:
    return all(int(code.value if isinstance(code, paho.ReasonCode) else code) >= 0x80 for code in codes)


# --- raw MQTT 3.1.1 ---------------------------------------------------------------------------------------


def _field(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind]) + bytes(encoded) + body


async def raw_connect(
    port: int,
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    *,
    will: tuple[str, bytes] | None = None,
    keepalive: int = 60,
    level: int = 4,
    clean: bool = True,
    buffer: int | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """Open a socket (with small kernel buffers if ``buffer``), send CONNECT (a will is retained QoS 1) and
    read the CONNACK code."""
    flags = 0x02 if clean else 0
    payload = _field(client_id)
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20
        payload += _field(will[0]) + _field(will[1])
    if username is not None:
        flags |= 0x80
        payload += _field(username)
    if password is not None:
        flags |= 0x40
        payload += _field(password)
    header = _field("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive)
    sock = socket.socket()
    if buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(_packet(0x10, header + payload))
    await writer.drain()
    try:
        connack = await asyncio.wait_for(reader.readexactly(4), 3)
    except asyncio.IncompleteReadError:
        return reader, writer, CLOSED
    assert connack[0] == 0x20, connack
    return reader, writer, connack[3]


def raw_publish(topic: str, payload: bytes) -> bytes:
    return _packet(0x30, _field(topic) + payload)  # QoS 0


async def raw_subscribe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, topic: str, qos: int) -> None:
    writer.write(_packet(0x82, struct.pack("!H", 1) + _field(topic) + bytes([qos])))
    await writer.drain()
    kind, body = await read_packet(reader)
    assert (kind >> 4, body[2:]) == (9, bytes([qos])), (kind, body)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return kind, await reader.readexactly(length)


async def closed_by_broker(reader: asyncio.StreamReader, within: float = 3.0) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except (ConnectionError, TimeoutError):
        return False


# --- connecting -------------------------------------------------------------------------------------------


async def test_device_with_right_credentials_connects_and_hub_receives_its_telemetry(
    broker: EmbeddedBroker,
) -> None:
    async with hub(broker) as hub_client, device(broker, "dev-a") as dev_a:
        await hub_client.subscribe(topics.HUB_SUBSCRIPTIONS[0], qos=1)
        await dev_a.publish(topics.telemetry("dev-a"), b'{"temp": 21.5}', qos=1)
        message = await next_message(hub_client)
        assert message.topic.value == "tos/v1/dev-a/telemetry"
        assert message.payload == b'{"temp": 21.5}'
        assert message.qos == 1


async def test_wrong_secret_anonymous_and_unknown_device_are_refused(broker: EmbeddedBroker) -> None:
    *_, code = await raw_connect(broker.port, "dev-a", "dev-a", "wrong")
    assert code == BAD_CREDENTIALS
    *_, code = await raw_connect(broker.port, "dev-a")
    assert code == NOT_AUTHORIZED
    *_, code = await raw_connect(broker.port, "nobody", "nobody", "x")
    assert code == BAD_CREDENTIALS
    *_, code = await raw_connect(broker.port, HUB_CLIENT_ID, HUB_USER, "not-the-hub-password")
    assert code == BAD_CREDENTIALS
    with pytest.raises(aiomqtt.MqttError):
        async with device(broker, "dev-a", password="wrong"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, broker.port, timeout=5):
            pass
    *_, code = await raw_connect(broker.port, "dev-a", "dev-a", "secret-a")
    assert code == ACCEPTED


async def test_authenticate_raising_refuses_the_connection_and_the_broker_keeps_serving() -> None:
    async def flaky(username: str, password: str) -> bool:
        if username == "dev-b":
            raise RuntimeError("database is down")
        return await check_device(username, password)

    async with make_broker(authenticate=flaky) as broker:
        *_, code = await raw_connect(broker.port, "dev-b", "dev-b", "secret-b")
        assert code == BAD_CREDENTIALS
        async with hub(broker) as hub_client, device(broker, "dev-a") as dev_a:
            await hub_client.subscribe("tos/v1/+/telemetry", qos=1)
            await dev_a.publish(topics.telemetry("dev-a"), b"{}", qos=1)
            assert (await next_message(hub_client)).topic.value == "tos/v1/dev-a/telemetry"


async def test_port_in_use_raises_config_error() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            async with make_broker(port=port):
                pass
    assert str(caught.value) == f"MQTT port {port} on {HOST} is already in use"


async def test_port_zero_picks_a_free_port_and_exit_leaves_no_tasks() -> None:
    before = asyncio.all_tasks()
    async with make_broker(port=0) as broker:
        assert broker.port > 0
        async with device(broker, "dev-a") as dev_a:
            await dev_a.publish(topics.telemetry("dev-a"), b"{}", qos=1)
        *_, code = await raw_connect(broker.port, "dev-b", "dev-b", "secret-b")  # left open on purpose
        assert code == ACCEPTED
    await asyncio.sleep(0.05)
    assert {task for task in asyncio.all_tasks() - before if not task.done()} == set()


async def test_mqtt5_and_mqtt31_clients_get_a_clear_refusal(broker: EmbeddedBroker) -> None:
    *_, code = await raw_connect(broker.port, "dev-a", "dev-a", "secret-a", level=5)
    assert code == BAD_PROTOCOL
    for version in (aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V31):
        with pytest.raises(aiomqtt.MqttCodeError) as caught:
            async with device(broker, "dev-a", protocol=version):
                pass
        assert "protocol version" in str(caught.value).lower()


# --- access control ---------------------------------------------------------------------------------------


async def test_device_publishing_to_another_devices_topic_is_not_delivered(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client, device(broker, "dev-a") as dev_a:
        await hub_client.subscribe("tos/v1/#", qos=1)
        await dev_a.publish(topics.telemetry("dev-b"), b'{"forged": true}', qos=1)
        await dev_a.publish(topics.status("dev-b"), b"offline", qos=1, retain=True)
        await dev_a.publish("elsewhere/topic", b"x", qos=1)
        await dev_a.publish(topics.telemetry("dev-a"), b'{"own": true}', qos=1)
        message = await next_message(hub_client)
        assert (message.topic.value, message.payload) == ("tos/v1/dev-a/telemetry", b'{"own": true}')
        await no_message(hub_client)


async def test_device_wildcard_subscriptions_do_not_reach_other_devices(broker: EmbeddedBroker) -> None:
    async with (
        hub(broker) as hub_client,
        device(broker, "dev-a") as dev_a,
        device(broker, "dev-b") as dev_b,
    ):
        await hub_client.subscribe("tos/v1/+/telemetry", qos=1)
        assert refused(await dev_a.subscribe("tos/v1/#", qos=1))
        assert refused(await dev_a.subscribe("tos/v1/+/telemetry", qos=1))
        assert refused(await dev_a.subscribe("#", qos=1))
        assert not refused(await dev_a.subscribe(topics.device_filter("dev-a"), qos=1))

        await dev_b.publish(topics.telemetry("dev-b"), b"from b", qos=1)
        assert (await next_message(hub_client)).payload == b"from b"  # routed to every subscriber by now
        await dev_a.publish(topics.telemetry("dev-a"), b"from a", qos=1)
        message = await next_message(dev_a)
        assert (message.topic.value, message.payload) == ("tos/v1/dev-a/telemetry", b"from a")
        await no_message(dev_a)


async def test_client_id_cannot_impersonate_another_account(broker: EmbeddedBroker) -> None:
    async with hub(broker, clean_session=False) as hub_client:
        await hub_client.subscribe("tos/v1/+/telemetry", qos=1)
        # A device must use its own id as client id (or none at all).
        *_, code = await raw_connect(broker.port, "dev-b", "dev-a", "secret-a")
        assert code == ID_REJECTED
        *_, code = await raw_connect(broker.port, HUB_CLIENT_ID, "dev-a", "secret-a")
        assert code == ID_REJECTED
        # Without credentials, the hub's client id must not disturb the hub's session (amqtt used to wipe it).
        *_, code = await raw_connect(broker.port, HUB_CLIENT_ID, "intruder", "x")
        assert code == ID_REJECTED
        *_, code = await raw_connect(broker.port, HUB_CLIENT_ID, HUB_USER, "not-the-hub-password")
        assert code == BAD_CREDENTIALS
        *_, code = await raw_connect(broker.port, HUB_CLIENT_ID)
        assert code == NOT_AUTHORIZED
        async with device(broker, "dev-a", identifier="") as dev_a:  # broker-assigned client id
            await dev_a.publish(topics.telemetry("dev-a"), b"still routed", qos=1)
            assert (await next_message(hub_client)).payload == b"still routed"


async def test_will_on_another_devices_topic_is_refused(broker: EmbeddedBroker) -> None:
    will = (topics.status("dev-b"), b"offline")
    *_, code = await raw_connect(broker.port, "dev-a", "dev-a", "secret-a", will=will)
    assert code == NOT_AUTHORIZED


async def test_hub_account_may_publish_and_subscribe_everything(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client, device(broker, "dev-b") as dev_b:
        await dev_b.subscribe(topics.device_filter("dev-b"), qos=1)
        assert not refused(await hub_client.subscribe("#", qos=1))
        await hub_client.publish(topics.command("dev-b", "r1"), b'{"name": "reboot"}', qos=1)
        assert (await next_message(dev_b)).topic.value == "tos/v1/dev-b/commands/r1"


# --- retained messages and last will ---------------------------------------------------------------------


async def test_retained_desired_is_delivered_to_a_device_connecting_later(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.publish(topics.desired("dev-a"), b'{"rate": 5}', qos=1, retain=True)
        await hub_client.publish(topics.desired("dev-b"), b'{"rate": 9}', qos=1, retain=True)
    async with device(broker, "dev-a") as dev_a:
        await dev_a.subscribe(topics.device_filter("dev-a"), qos=1)
        message = await next_message(dev_a)
        assert (message.topic.value, message.payload, message.retain) == (
            "tos/v1/dev-a/twin/desired",
            b'{"rate": 5}',
            True,
        )
        await no_message(dev_a)


async def test_other_devices_retained_messages_are_not_replayed_at_connect(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.subscribe("tos/v1/+/status", qos=1)
        async with device(broker, "dev-b") as dev_b:
            await dev_b.publish(topics.status("dev-b"), b"online", qos=1, retain=True)
        await next_message(hub_client)
        # amqtt replays retained messages matching *any* client's filters (here the hub's) at connect.
        async with device(broker, "dev-a") as dev_a:
            await no_message(dev_a)


async def test_last_will_reaches_the_hub_when_a_device_socket_drops(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.subscribe("tos/v1/+/status", qos=1)
        _, writer, code = await raw_connect(
            broker.port, "dev-a", "dev-a", "secret-a", will=(topics.status("dev-a"), b"offline")
        )
        assert code == ACCEPTED
        writer.transport.abort()  # no DISCONNECT
        message = await next_message(hub_client)
        assert (message.topic.value, message.payload) == ("tos/v1/dev-a/status", b"offline")
    async with hub(broker) as hub_client:  # the will was retained
        await hub_client.subscribe("tos/v1/+/status", qos=1)
        message = await next_message(hub_client)
        assert (message.payload, message.retain) == (b"offline", True)


async def test_a_silent_device_is_dropped_after_one_and_a_half_keepalives(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.subscribe("tos/v1/+/status", qos=1)
        reader, writer, code = await raw_connect(
            broker.port, "dev-a", "dev-a", "secret-a", will=(topics.status("dev-a"), b"offline"), keepalive=1
        )
        assert code == ACCEPTED
        assert (await next_message(hub_client, within=4)).payload == b"offline"
        assert await closed_by_broker(reader)
        writer.close()


# --- limits, sessions, kicking ----------------------------------------------------------------------------


async def test_oversized_payload_drops_the_device_connection(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.subscribe("tos/v1/+/telemetry", qos=1)
        reader, writer, code = await raw_connect(broker.port, "dev-a", "dev-a", "secret-a")
        assert code == ACCEPTED
        writer.write(raw_publish(topics.telemetry("dev-a"), b"x" * MAX_PAYLOAD))  # exactly the limit
        writer.write(raw_publish(topics.telemetry("dev-a"), b"y" * (MAX_PAYLOAD + 1)))
        await writer.drain()
        assert (await next_message(hub_client)).payload == b"x" * MAX_PAYLOAD
        assert await closed_by_broker(reader)
        writer.close()
        await no_message(hub_client, within=0.2)
        # The hub account is not limited.
        await hub_client.publish(topics.telemetry("dev-a"), b"z" * (4 * MAX_PAYLOAD), qos=1)
        assert (await next_message(hub_client)).payload == b"z" * (4 * MAX_PAYLOAD)


async def test_hub_persistent_session_gets_qos1_messages_sent_while_away(broker: EmbeddedBroker) -> None:
    async with hub(broker, clean_session=False) as hub_client:
        await hub_client.subscribe("tos/v1/+/telemetry", qos=1)
    async with device(broker, "dev-a") as dev_a:
        for n in range(3):
            await dev_a.publish(topics.telemetry("dev-a"), f"{n}".encode(), qos=1)
    async with hub(broker, clean_session=False) as hub_client:
        received = [await next_message(hub_client) for _ in range(3)]
    assert [m.payload for m in received] == [b"0", b"1", b"2"]
    assert all(m.retain for m in received)  # amqtt's quirk: queued messages come with the RETAIN flag


async def test_disconnect_client_kicks_a_device_and_leaves_the_hub_alone(broker: EmbeddedBroker) -> None:
    async with hub(broker) as hub_client:
        await hub_client.subscribe("tos/v1/+/status", qos=1)
        reader, writer, code = await raw_connect(
            broker.port, "dev-a", "dev-a", "secret-a", will=(topics.status("dev-a"), b"offline")
        )
        assert code == ACCEPTED
        await broker.disconnect_client("dev-a")
        assert await closed_by_broker(reader)
        writer.close()
        assert (await next_message(hub_client)).payload == b"offline"
        await broker.disconnect_client(HUB_USER)  # not a device: ignored
        await broker.disconnect_client("nobody")
        await hub_client.publish(topics.status("dev-b"), b"alive", qos=1)
        assert (await next_message(hub_client)).payload == b"alive"


async def test_qos1_message_in_flight_when_the_hub_drops_is_delivered_again(broker: EmbeddedBroker) -> None:
    reader, writer, code = await raw_connect(broker.port, HUB_CLIENT_ID, HUB_USER, HUB_PASSWORD, clean=False)
    assert code == ACCEPTED
    await raw_subscribe(reader, writer, "tos/v1/+/telemetry", qos=1)
    async with device(broker, "dev-a") as dev_a:
        await dev_a.publish(topics.telemetry("dev-a"), b"in flight", qos=1)
        kind, body = await asyncio.wait_for(read_packet(reader), 3)
        assert kind >> 4 == 3 and body.endswith(b"in flight")
        writer.transport.abort()  # the hub's client dies before its PUBACK (amqtt alone forgot the message)
        async with hub(broker, clean_session=False) as hub_client:
            assert (await next_message(hub_client)).payload == b"in flight"


async def test_a_slow_hub_makes_the_broker_stop_reading_devices_without_loss(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_amqtt, "HUB_BACKLOG", 20)
    count, payload = 3000, b"p" * 400
    hub_reader, hub_writer, code = await raw_connect(broker.port, HUB_CLIENT_ID, HUB_USER, HUB_PASSWORD, buffer=4096)
    assert code == ACCEPTED
    await raw_subscribe(hub_reader, hub_writer, "tos/v1/+/telemetry", qos=0)
    # Linux would let the broker's side of the hub's socket buffer megabytes: keep it small as well.
    _, hub_handler = broker._broker._sessions[HUB_CLIENT_ID]  # type: ignore[union-attr]
    hub_handler.writer._writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    _, dev_writer, code = await raw_connect(broker.port, "dev-a", "dev-a", "secret-a", buffer=4096)
    assert code == ACCEPTED

    async def flood() -> None:
        for _ in range(count):
            dev_writer.write(raw_publish(topics.telemetry("dev-a"), payload))
            await dev_writer.drain()

    flooding = asyncio.ensure_future(flood())
    try:
        await asyncio.sleep(0.5)
        # Without the push-back amqtt would hold (nearly) all 3000 messages in memory by now.
        assert 0 < broker.backlog <= 25
        received = 0
        async with asyncio.timeout(15):
            while received < count:
                kind, body = await read_packet(hub_reader)
                assert kind >> 4 == 3 and body.endswith(payload)
                received += 1
        await asyncio.wait_for(flooding, 3)
    finally:
        flooding.cancel()
        dev_writer.close()
        hub_writer.close()


# --- subscription and retained-message indexes ------------------------------------------------------------

INDEX_FILTERS = [
    "#",
    "+",
    "+/+",
    "+/#",
    "tos/#",
    "tos/+",
    "tos/v1/#",
    "tos/v1/+/telemetry",
    "tos/v1/+/events/+",
    "tos/v1/+/commands/+/response",
    "tos/v1",
    "tos/v1/dev-a",
    "tos/v1/dev-a/#",
    "tos/v1/dev-a/+",
    "tos/v1/dev-a/twin/+",
    "tos/v1/dev-a/commands/+",
    "tos/v1/dev-a/twin/desired",
    "tos/v1/dev-a/+/desired",
    "tos/v1//x",
    "$SYS/broker/#",
    "$SYS/+/x",
    "a/b",
    "a/b/c",
]
INDEX_TOPICS = [
    "tos",
    "tos/v1",
    "tos/v1/dev-a",
    "tos/v1/dev-a/",
    "tos/v1/dev-a/telemetry",
    "tos/v1/dev-a/twin/desired",
    "tos/v1/dev-a/twin/desired/x",
    "tos/v1/dev-a/commands/c1",
    "tos/v1/dev-a/commands/c1/response",
    "tos/v1/dev-b/twin/desired",
    "tos/v1/dev-b/events/boot",
    "tos/v1//x",
    "tos/v2/dev-a/telemetry",
    "$SYS/broker/x",
    "$SYS/broker",
    "a/b",
    "a/b/c",
    "a/b/c/d",
]


async def test_indexes_find_exactly_what_amqtt_matching_finds(broker: EmbeddedBroker) -> None:
    amqtt_broker = broker._broker
    assert amqtt_broker is not None
    subscriptions, retained = topic_index.SubscriptionIndex(), topic_index.RetainedIndex()
    for topic_filter in INDEX_FILTERS:
        subscriptions[topic_filter] = []
    for topic in INDEX_TOPICS:
        retained[topic] = topic
    for topic in INDEX_TOPICS:
        expected = {f for f in INDEX_FILTERS if amqtt_broker._matches(topic, f)}
        assert {f for f in subscriptions.candidates(topic) if amqtt_broker._matches(topic, f)} == expected, topic
    for topic_filter in INDEX_FILTERS:
        expected = {t for t in INDEX_TOPICS if amqtt_broker._matches(t, topic_filter)}
        found = {t for t, _ in retained.candidates(topic_filter) if amqtt_broker._matches(t, topic_filter)}
        assert found == expected, topic_filter
    for topic_filter in INDEX_FILTERS:
        del subscriptions[topic_filter]
    for topic in INDEX_TOPICS:
        retained.pop(topic)
    assert subscriptions.candidates("tos/v1/dev-a/x") == [] and retained.candidates("#") == []
    assert not subscriptions._by_key and not subscriptions._unkeyed and not retained._by_key


async def test_device_wildcards_in_its_own_subtree_get_what_amqtt_matches_and_nothing_after_unsubscribe(
    broker: EmbeddedBroker,
) -> None:
    amqtt_broker = broker._broker
    assert amqtt_broker is not None
    filters = ["tos/v1/dev-a/commands/+", "tos/v1/dev-a/twin/#", "tos/v1/dev-a/+"]
    published = [
        "tos/v1/dev-a/commands/c1",
        "tos/v1/dev-a/commands/c1/response",
        "tos/v1/dev-a/twin",
        "tos/v1/dev-a/twin/desired",
        "tos/v1/dev-a/twin/delta/x",
        "tos/v1/dev-a/errors",
        "tos/v1/dev-a",
        "tos/v1/dev-b/commands/c1",
        "tos/v1/dev-b/twin/desired",
    ]
    expected = sorted(t for t in published for f in filters if amqtt_broker._matches(t, f))  # once per filter
    async with hub(broker) as hub_client, device(broker, "dev-a") as dev_a, device(broker, "dev-b") as dev_b:
        await dev_b.subscribe(topics.device_filter("dev-b"), qos=1)
        for topic_filter in filters:
            assert not refused(await dev_a.subscribe(topic_filter, qos=1))
        for topic in published:
            await hub_client.publish(topic, topic.encode(), qos=1)
        received = [(await next_message(dev_a)).topic.value for _ in expected]
        await no_message(dev_a)
        assert sorted(received) == expected

        for topic_filter in filters:
            await dev_a.unsubscribe(topic_filter)
        assert amqtt_broker._subscriptions.filters_of("dev-a") == []
        for topic in published:
            await hub_client.publish(topic, topic.encode(), qos=1)
        await no_message(dev_a)
        # dev-b's own filter still works after dev-a left.
        assert (await next_message(dev_b)).topic.value == "tos/v1/dev-b/commands/c1"

    # The session monitor drops the disconnected clean sessions: their filters leave the index.
    async with asyncio.timeout(5):
        while amqtt_broker._subscriptions.candidates("tos/v1/dev-b/x"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert amqtt_broker._subscriptions.filters_of("dev-b") == []


async def test_hub_wildcards_receive_every_devices_messages_next_to_device_subscriptions(
    broker: EmbeddedBroker,
) -> None:
    devices = ("dev-a", "dev-b")
    async with hub(broker) as hub_client, device(broker, "dev-a") as dev_a, device(broker, "dev-b") as dev_b:
        for topic_filter in topics.HUB_SUBSCRIPTIONS:
            assert not refused(await hub_client.subscribe(topic_filter, qos=1))
        for client, device_id in ((dev_a, "dev-a"), (dev_b, "dev-b")):
            for topic_filter in (
                topics.desired(device_id),
                topics.delta(device_id),
                f"{topics.PREFIX}{device_id}/commands/+",
                topics.errors(device_id),
            ):
                assert not refused(await client.subscribe(topic_filter, qos=1))
        sent = []
        for client, device_id in ((dev_a, "dev-a"), (dev_b, "dev-b")):
            for topic in (
                topics.telemetry(device_id),
                topics.reported(device_id),
                topics.event(device_id, "boot"),
                topics.command_response(device_id, "r1"),
                topics.status(device_id),
            ):
                await client.publish(topic, b"x", qos=1)
                sent.append(topic)
        received = [(await next_message(hub_client)).topic.value for _ in sent]
        assert sorted(received) == sorted(sent)
        await no_message(hub_client)
        for client in (dev_a, dev_b):
            await no_message(client)  # none of it is for the devices
        assert {topics.device_of(t) for t in received} == set(devices)


async def test_retained_messages_reach_only_their_own_device_on_subscribe_and_on_reconnect(
    broker: EmbeddedBroker,
) -> None:
    async with hub(broker) as hub_client:
        for device_id in ("dev-a", "dev-b"):
            await hub_client.publish(topics.desired(device_id), device_id.encode(), qos=1, retain=True)
            await hub_client.publish(topics.status(device_id), b"online", qos=1, retain=True)
    async with device(broker, "dev-b", clean_session=False) as dev_b:
        await dev_b.subscribe("tos/v1/dev-b/twin/+", qos=0)
        message = await next_message(dev_b)
        assert (message.topic.value, message.payload, message.retain) == ("tos/v1/dev-b/twin/desired", b"dev-b", True)
        await no_message(dev_b)
    # A persistent session's filters are replayed at connect (amqtt's _handle_client_session): own ones only.
    async with device(broker, "dev-b", clean_session=False) as dev_b:
        message = await next_message(dev_b)
        assert (message.topic.value, message.retain) == ("tos/v1/dev-b/twin/desired", True)
        await no_message(dev_b)
    async with device(broker, "dev-a") as dev_a:
        await no_message(dev_a)
        await dev_a.subscribe(topics.status("dev-a"), qos=1)
        message = await next_message(dev_a)
        assert (message.topic.value, message.payload) == ("tos/v1/dev-a/status", b"online")
        await no_message(dev_a)
