"""The hub's own MQTT session with the broker (embedded or external).

paho-mqtt runs the socket in its own thread; received messages go straight onto the ingest queue and are
acknowledged (manual PUBACK) only after ingest has stored them. The session is persistent (clean session off,
MQTT 5 session expiry) under a fixed client id, so an external broker keeps QoS 1 messages for the hub while it
is down or restarting and hands them over when it is back. The embedded broker lives in the hub's process: it
keeps the session across a reconnect of this client, but not across a restart of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tosplus.errors import ConfigError
from tosplus.gateway import topics

log = logging.getLogger(__name__)

Deliver = Callable[[str, bytes, Callable[[], None] | None], None]


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Send small packets (acks, commands) at once instead of waiting for the peer's delayed ACK (Nagle)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HubClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        deliver: Deliver,
        mqtt5: bool,
        on_session: Callable[[], None] = lambda: None,
        shared_group: str | None = None,
        filters: tuple[str, ...] = topics.HUB_SUBSCRIPTIONS,
        telemetry_group: str | None = None,
        qos: int = 1,
    ) -> None:
        self.host, self.port = host, port
        self.mqtt5 = mqtt5
        self.deliver = deliver
        self.on_session = on_session
        self.shared_group = shared_group
        self.filters = filters
        self.telemetry_group = telemetry_group
        self.qos = qos
        self._generation = 0
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            clean_session=None if mqtt5 else False,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(1, 5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_open = _no_delay

    # paho callbacks run in paho's network thread -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            self._connected.set()
            return
        self._generation += 1
        self.on_session()
        filters = self.subscriptions()
        client.subscribe([(f, self.qos) for f in filters])
        self._connect_error = None
        self._connected.set()
        log.info("hub connected to the broker at %s:%d", self.host, self.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason is not None and getattr(reason, "is_failure", False):
            log.warning("hub lost the broker at %s:%d (%s); reconnecting", self.host, self.port, reason)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack: Callable[[], None] | None = None
        if msg.qos > 0:
            generation, mid, qos = self._generation, msg.mid, msg.qos

            def ack() -> None:
                # A message id belongs to one connection: after a reconnect the broker redelivers instead.
                if generation == self._generation:
                    client.ack(mid, qos)

        self.deliver(msg.topic, bytes(msg.payload), ack)

    def subscriptions(self) -> tuple[str, ...]:
        """Topic filters of this session: shared across hubs (shared_group), and telemetry shared with the
        ingest workers (telemetry_group)."""
        out = []
        for topic_filter in self.filters:
            if self.shared_group:
                out.append(f"$share/{self.shared_group}/{topic_filter}")
            elif self.telemetry_group and topic_filter == topics.TELEMETRY_FILTER:
                out.append(f"$share/{self.telemetry_group}/{topic_filter}")
            else:
                out.append(topic_filter)
        return tuple(out)

    # ---------------------------------------------------------------------------------------------
    async def start(self, timeout: float = 10.0) -> None:
        props = None
        if self.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0xFFFFFFFF  # keep the session (and queued messages) while away
            props.ReceiveMaximum = 65535  # let the broker have many unacknowledged messages in flight
        try:
            if self.mqtt5:
                self._client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
            else:
                self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConfigError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        self._client.loop_start()
        ok = await asyncio.to_thread(self._connected.wait, timeout)
        if not ok or self._connect_error:
            self._client.loop_stop()
            why = self._connect_error or "no answer"
            raise ConfigError(f"the MQTT broker at {self.host}:{self.port} refused the hub's connection: {why}")

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)
