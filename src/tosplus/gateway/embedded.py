"""The embedded MQTT broker: amqtt running inside the hub's event loop.

Usage::

    async with EmbeddedBroker(host="127.0.0.1", port=1883, authenticate=check_device,
                              hub_username="hub", hub_password=secret) as broker:
        ...  # the hub's own MQTT client connects to broker.port

Devices connect with username = device id and password = device secret. The hub's internal account
(``hub_username``/``hub_password``) may publish and subscribe everything; a device may publish and subscribe
only under ``tos/v1/{device id}/`` (the filter ``tos/v1/{device id}/#``).

How it is wired into amqtt 0.12
-------------------------------
amqtt 0.12 loads plugins from the ``plugins`` section of the broker config: a dict keyed by the dotted path
of a :class:`~amqtt.plugins.base.BasePlugin` subclass, whose value is turned into the plugin's ``Config``
dataclass by ``PluginManager._load_str_plugin`` (dacite, ``strict=True``). Naming the plugins explicitly also
means amqtt's defaults (``EventLoggerPlugin``, ``PacketLoggerPlugin``, ``AnonymousAuthPlugin`` with
anonymous allowed, ``BrokerSysPlugin`` publishing ``$SYS`` every 20 s) are *not* loaded, and nothing is
written to disk (amqtt 0.12 has no persistence plugin loaded unless named). We register exactly two:

* :class:`~tosplus.gateway.embedded_policy.TosAuthPlugin` (a ``BaseAuthPlugin``) and
* :class:`~tosplus.gateway.embedded_policy.TosTopicPlugin` (a ``BaseTopicPlugin``, asked for ``Action.PUBLISH``,
  ``SUBSCRIBE`` and ``RECEIVE``),

both with ``{"policy": _Policy(...)}`` as config: the ``_Policy`` object carries our callables through
dacite untouched (its field is typed ``_Policy | None``, which dacite checks with ``isinstance``).

Where the parts are
-------------------
* :mod:`tosplus.gateway.embedded_policy`: who may connect and which topics they may use (``_Policy``), the two
  plugins, and the socket reader that limits packet fields and pushes back on devices (``_LimitedReader``).
* :mod:`tosplus.gateway.embedded_amqtt`: ``_TosBroker``, amqtt's ``Broker`` with our fixes (pinned to amqtt
  0.12.x; each fix is documented there: authentication before any session is touched, client ids bound to
  usernames, will topics checked, keep-alive enforced, retained messages kept inside the ACL, a packet size
  limit, a CONNECT timeout, routing in batches over snapshots, in-flight QoS 1 messages kept, back-pressure,
  indexed subscriptions and retained messages).
* here: :class:`EmbeddedBroker`, which configures, starts and stops it.

Delivery guarantees (what the hub's no-loss design can rely on)
---------------------------------------------------------------
* **A device's QoS 1 PUBLISH is acknowledged before it is delivered.**
  ``ProtocolHandler._handle_qos1_message_flow`` (direction ``INCOMING``) puts the message on
  ``session.delivered_message_queue`` and sends the PUBACK at once. Only afterwards does
  ``Broker._client_message_loop`` / ``_handle_message_delivery`` run the PUBLISH ACL and
  ``_broadcast_message`` put it on the in-memory ``_broadcast_queue``, from which ``_broadcast_loop`` /
  ``_run_broadcast`` start one ``handler.mqtt_publish`` task per subscriber. So a PUBACK means "the broker
  has it in memory", not "the hub has it"; a message refused by the ACL is acknowledged and dropped.
  Whatever is still queued when the broker stops (``Broker.shutdown`` clears ``_broadcast_queue``) is
  lost: in-process, that is when the hub stops.
* **The hub's session persists (clean_session=False) and QoS 1 messages are queued while it is away,
  in memory only.** A disconnected session with ``clean_session=False`` stays in ``Broker._sessions``
  (``_session_monitor`` removes only clean or anonymous sessions, and ones idle past
  :data:`SESSION_EXPIRY_S`). A message for such a session whose QoS is 1 or 2 goes through
  ``_retain_broadcast_message`` into ``session.retained_messages`` (an unbounded ``asyncio.Queue``); on
  reconnect ``_publish_session_retained_messages`` sends them **with the RETAIN flag set**, before the
  client's other traffic. The QoS is the *subscription's* (amqtt does not take the minimum with the
  publisher's): a hub subscribed at QoS 1 also gets QoS 0 device messages at QoS 1, queued while it is
  away. Nothing is written to disk: a hub restart is a broker restart, and sessions start empty.
* **QoS 1 messages in flight to the hub when its connection drops.** amqtt alone loses them:
  ``_handle_qos1_message_flow`` (direction ``OUTGOING``) keeps the message in ``session.inflight_out`` only
  while it waits for the PUBACK (hard-coded 5 s); ``ProtocolHandler.stop`` cancels that wait and the
  ``finally`` drops the message, so ``_retry_deliveries`` finds nothing to resend on reconnect.
  ``_TosBroker._deliver`` catches that case for persistent sessions and puts the message back on the
  session's queue (or hands it to the connection that has already replaced the old one): it arrives again
  on the next connection, with the RETAIN flag and possibly after newer messages (at least once, not in
  order). A PUBACK later than 5 s on a live connection only produces a warning; the message was written.
* Messages to one connection are written in routing order through one lock per connection.

Protocol
--------
amqtt speaks MQTT 3.1.1 only. A CONNECT for any other protocol (MQTT 5, or MQTT 3.1 ``MQIsdp``) gets a
CONNACK with return code 1 (unacceptable protocol version) and the socket is closed; paho reports
"Unsupported protocol version". (amqtt alone parsed an MQTT 5 CONNECT as 3.1.1, got lost in its
properties and waited until the client gave up; MQTT 3.1 got no CONNACK at all.)

The hub's own MQTT client
-------------------------
MQTT 3.1.1 (``paho.MQTTv311``), username/password of the hub account, a fixed non-empty client id with
``clean_session=False`` (its subscriptions and QoS 1 queue survive reconnects), QoS 1 subscriptions. The
broker drops any connection silent for 1.5 x its keep-alive, so keep paho's keep-alive (default 60 s, it
pings on its own). The RETAIN flag does not tell a retained snapshot from a message queued while the hub
was away. No device may have the hub's client id as its id: it would be refused while the hub's session
exists.

Logging: amqtt logs every connection at INFO and every refused one at WARNING, and the ``transitions``
library it uses logs each session state change at INFO. Unless the application has set levels for them,
the ``amqtt`` and ``transitions`` loggers are set to WARNING when the broker starts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final

from amqtt.broker import Broker
from amqtt.errors import BrokerError
from amqtt.plugins import manager as amqtt_plugin_manager

from tosplus.errors import ConfigError
from tosplus.gateway.embedded_amqtt import CONNECT_TIMEOUT_S, _TosBroker
from tosplus.gateway.embedded_policy import TosAuthPlugin, TosTopicPlugin, _Policy

__all__ = ["CONNECT_TIMEOUT_S", "SESSION_EXPIRY_S", "EmbeddedBroker", "TosAuthPlugin", "TosTopicPlugin"]

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 24 * 3600
"""A disconnected persistent session (and its queued messages) is dropped after this long."""


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _in_use(host: str, port: int) -> str:
    return f"MQTT port {port} on {host or 'all interfaces'} is already in use"


async def _check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` if something already listens on ``host:port`` (port 0 is always free)."""
    if port == 0:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"MQTT host {host!r} cannot be resolved ({exc})") from None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio.start_server does
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(_in_use(host, port)) from None
                # Anything else (say, no IPv6 here) is for the real bind to report.


def _address_in_use(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class EmbeddedBroker:
    """Async context manager running an amqtt broker in the current event loop."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        authenticate: Callable[[str, str], Awaitable[bool]],
        hub_username: str,
        hub_password: str,
        max_payload_bytes: int = 65536,
    ) -> None:
        if not hub_username or not hub_password:
            raise ConfigError("the embedded MQTT broker needs a hub username and password")
        if max_payload_bytes < 1:
            raise ConfigError("max_payload_bytes must be positive")
        self._host = host
        self._requested_port = port
        self._policy = _Policy(authenticate, hub_username, hub_password)
        self._max_payload_bytes = max_payload_bytes
        self._broker: _TosBroker | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on (the one picked by the system when created with ``port=0``)."""
        bound = self._broker.bound_port if self._broker is not None else None
        return bound if bound is not None else self._requested_port

    async def __aenter__(self) -> EmbeddedBroker:
        if self._broker is not None:
            raise RuntimeError("the embedded MQTT broker is already running")
        host, port = self._host, self._requested_port
        await _check_port_free(host, port)
        _quiet_library_loggers()
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": _bind_address(host, port)}},
            "plugins": {
                f"{TosAuthPlugin.__module__}.{TosAuthPlugin.__qualname__}": {"policy": self._policy},
                f"{TosTopicPlugin.__module__}.{TosTopicPlugin.__qualname__}": {"policy": self._policy},
            },
            "session_expiry_interval": SESSION_EXPIRY_S,
        }
        broker = _TosBroker(config, self._policy, self._max_payload_bytes)
        try:
            await broker.start()
        except BrokerError as exc:
            _forget_plugin_manager(broker)
            if _address_in_use(exc):
                raise ConfigError(_in_use(host, port)) from None
            cause = exc.__cause__ or exc
            raise ConfigError(f"the MQTT broker cannot listen on {host}:{port} ({cause})") from None
        self._broker = broker
        log.info("embedded MQTT broker listening on %s:%d", host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            await broker.shutdown()
        finally:
            await broker.wait_side_tasks()
            _forget_plugin_manager(broker)
            log.info("embedded MQTT broker stopped")

    @property
    def backlog(self) -> int:
        """Messages the broker holds for routing or for the hub's connections (a health/metrics figure).

        Past :data:`HUB_BACKLOG` the broker stops reading device sockets until the hub catches up.
        """
        if self._broker is None:
            return 0
        return self._broker.backlog

    async def disconnect_client(self, client_id_or_username: str) -> None:
        """Kick a device (by client id or username/device id) and drop its session; best effort.

        Used when a device's credentials are revoked or it is disabled or deleted. Its queued messages and
        subscriptions go with the session; a connected device's last will is published as for a dropped
        socket. The hub account's own sessions are never kicked.
        """
        if self._broker is None:
            return
        try:
            dropped = await self._broker.disconnect(client_id_or_username)
        except Exception:
            log.exception("disconnecting MQTT client %s failed", client_id_or_username)
            return
        if dropped:
            log.info("disconnected MQTT client %s (%d session(s))", client_id_or_username, dropped)


def _quiet_library_loggers() -> None:
    """amqtt logs each connection and ``transitions`` each state change at INFO: too chatty for a hub."""
    for name in ("amqtt", "transitions"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _forget_plugin_manager(broker: Broker) -> None:
    """amqtt keeps every PluginManager in a module-level dict; drop ours so the broker can be freed."""
    registry: dict[str, Any] = amqtt_plugin_manager.plugins_manager
    for namespace, manager in list(registry.items()):
        if manager is broker.plugins_manager:
            del registry[namespace]
