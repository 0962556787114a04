"""amqtt's broker with the fixes the embedded MQTT broker needs.

:class:`~tosplus.gateway.embedded.EmbeddedBroker` runs it. The access policy it enforces and the socket reader it
gives each connection are in :mod:`tosplus.gateway.embedded_policy`; what the broker guarantees for delivery is
described in :mod:`tosplus.gateway.embedded`.

Fixes on top of amqtt (``_TosBroker``, a ``Broker`` subclass; pinned to amqtt 0.12.x)
--------------------------------------------------------------------------------------
Found by reading amqtt 0.12.1 and confirmed with real clients:

1. **Authentication ran too late.** ``Broker._initialize_client_session`` deletes the session of the
   CONNECT's client id (clean session) or copies the new username/password into it (persistent session)
   *before* ``Broker._handle_client_session`` calls ``_authenticate``; and a refused client still replaces
   the connected one in ``Broker._sessions``. So anyone *without* credentials could connect with the hub's
   client id and silently wipe the hub's subscriptions (checked: the hub stayed connected and received
   nothing). ``_TosBroker._initialize_client_session`` authenticates first (through the plugin) and only
   then touches existing sessions.
2. **Client ids are bound to usernames.** A device's client id must be its device id, or empty (the broker
   then assigns ``amqtt/<random>``; clean session only). A client id held by a session of another
   username is refused (CONNACK 2, identifier rejected), except that the hub account may take any client
   id over (the foreign session is deleted first, so the hub never inherits a device's subscriptions or
   queued messages). The ACL itself is always decided on the authenticated *username*, never on the
   client id.
3. **Will topics were not checked.** ``Broker._handle_disconnect`` publishes the will without asking the
   topic plugins, so a device could leave a retained will on another device's topic. A CONNECT whose will
   topic the account may not publish to is refused (CONNACK 5, not authorized).
4. **Keep-alive was not enforced.** ``BrokerProtocolHandler.handle_read_timeout`` is a no-op, so a device
   whose network vanished without a TCP reset stayed "connected" forever and its last will never fired.
   Each connection's read timeout is now 1.5 x its keep-alive (as MQTT 3.1.1 asks) and expiry closes the
   connection like a dropped socket (the will is published). Keep-alive 0 means no timeout.
5. **Retained messages leaked across the ACL.** At connect, ``Broker._handle_client_session`` replays the
   retained messages matching *every* subscription filter of *every* client (for example the hub's
   ``tos/v1/+/status``) to the connecting client, and ``_publish_retained_messages_for_subscription`` never
   asks the topic plugins. Now only the connecting session's own filters are replayed, and each retained
   topic must pass the ``RECEIVE`` check.
6. **No packet size limit.** amqtt has no setting for it and reads whatever remaining length a packet
   declares (up to 256 MB). The socket reader of each *device* connection refuses any single field larger
   than ``max_payload_bytes`` (in practice: a PUBLISH payload, or an absurd CONNECT field): amqtt's reader
   loop then drops the connection (the will is published). MQTT 3.1.1 has no way to tell the client why.
   The hub account is exempt (it validates its own payloads). The hub still checks sizes itself, which
   also covers HTTP, CoAP and an external broker.
7. **A CONNECT that never comes** held the socket forever; it now has :data:`CONNECT_TIMEOUT_S`.
8. **Routing lost messages and collapsed under load.** ``Broker._run_broadcast`` iterated the live
   ``_subscriptions`` dict across awaits, so a subscription added or removed meanwhile (any device
   subscribing, any session cleaned up) raised ``RuntimeError: dictionary changed size during iteration``
   and that message was lost for every subscriber (seen in the benchmark). It also routed one message per
   turn of ``_broadcast_loop`` and wrapped every topic check in a task: with ten devices publishing as fast
   as they could, the hub received ~100-400 msg/s. ``_TosBroker._run_broadcast`` iterates snapshots, routes
   up to :data:`BROADCAST_BATCH` queued messages per turn and awaits the topic plugins directly
   (``_topic_filtering``).
9. **QoS 1 messages in flight to a persistent session were dropped on disconnect** (see "Delivery
   guarantees" in :mod:`tosplus.gateway.embedded`); ``_TosBroker._deliver`` keeps them.
10. **No back-pressure.** amqtt reads sockets as fast as it can and queues without bound. The broker now
    stops reading a device's socket (TCP then pushes back on the device) while more than
    :data:`CLIENT_BACKLOG` of its messages wait to be routed, or while more than :data:`HUB_BACKLOG`
    messages wait to be routed or written to the hub (:attr:`EmbeddedBroker.backlog`). A *device* that
    does not read its own socket gets further messages dropped once :data:`CLIENT_BACKLOG` wait for it,
    so it cannot stall the others; messages for the hub account are never dropped.
11. **Everything scanned everything: 10,000 devices (40,000 filters) could not connect.** amqtt keeps
    ``_subscriptions`` (filter -> subscribers) and ``_retained_messages`` (topic -> message) as plain dicts
    and scans them whole. ``_TosBroker`` replaces both with dict subclasses (:class:`SubscriptionIndex`,
    :class:`RetainedIndex`) whose every mutation also updates an index by the first three topic levels
    (``tos/v1/<id>``): filters whose first three levels are literal (all of a device's) are filed under
    them, the others (the hub's ``tos/v1/+/...``, ``#``, ...) are kept in a short list checked for every
    message; filters are also indexed by subscribed client id. Every candidate is still checked with
    amqtt's ``Broker._matches`` (``+``, ``#``, ``$`` topics), so the result is exactly amqtt's. Uses:
    ``_route`` (amqtt's ``_run_broadcast``) looks up the topic's candidates instead of matching every
    filter; ``_publish_retained_messages_for_subscription`` looks up retained messages by a literal filter's
    first three levels (scanning only for wildcard-leading filters); ``_handle_client_session`` (amqtt's,
    copied) replays retained messages at connect for the session's own filters, not for every filter of
    every client; ``_del_all_subscriptions`` (session cleanup) visits the session's own filters;
    ``add_subscription`` / ``_del_subscription`` keep the client-id index. Both containers have a short
    ``__repr__``: amqtt's ``_client_message_loop`` logs ``repr(self._subscriptions)`` at every SUBSCRIBE
    even with DEBUG off. TCP listeners get an accept queue of :data:`ACCEPT_BACKLOG` (asyncio's default
    is 100; ``_create_server_instance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections import deque
from collections.abc import Awaitable
from functools import partial
from typing import Any, Final

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerType
from amqtt.errors import BrokerError, MQTTError
from amqtt.events import BrokerEvents
from amqtt.mqtt import connack
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseTopicPlugin
from amqtt.session import Session
from transitions import MachineError

from tosplus.gateway.embedded_policy import (
    _REFUSAL,
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    _LimitedReader,
    _Policy,
    _until_false,
)
from tosplus.gateway.topic_index import RetainedIndex, SubscriptionIndex

__all__ = ["CONNECT_TIMEOUT_S", "HUB_BACKLOG"]

log = logging.getLogger("tosplus.gateway.embedded")  # one logger name for the whole embedded broker

CONNECT_TIMEOUT_S: Final = 10.0
"""A client must send its CONNECT within this time after opening the socket."""
KEEPALIVE_FACTOR: Final = 1.5
TAKEOVER_WAIT_S: Final = 2.0
BROADCAST_BATCH: Final = 256
"""How many queued messages one turn of amqtt's broadcast loop routes."""
CLIENT_BACKLOG: Final = 1_000
"""Per device: messages read but not yet routed beyond which the broker stops reading its socket, and
messages waiting to be written to it beyond which further ones for it are dropped."""
ACCEPT_BACKLOG: Final = 1024
"""The listening socket's accept queue (asyncio's default is 100: a burst of connects timed out)."""
SUBSCRIPTION_REFUSED: Final = 0x80  # SUBACK return code
HUB_BACKLOG: Final = 20_000
"""Messages waiting to be routed, or to be written to the hub's connections, beyond which the broker stops
reading device sockets (TCP then pushes back on the devices)."""

_ADMITTED: Final = "tosplus.admitted"
_BACKLOG: Final = "tosplus.backlog"
UNACCEPTABLE_PROTOCOL_VERSION: Final[int] = connack.UNACCEPTABLE_PROTOCOL_VERSION  # typed: amqtt ships no types


class _TosBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's broker with the fixes listed in the module docstring."""

    def __init__(self, config: dict[str, Any], policy: _Policy, max_payload_bytes: int) -> None:
        super().__init__(config)
        self._policy = policy
        self._max_payload_bytes = max_payload_bytes
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._hub_backlog = 0  # deliveries to the hub account not finished yet
        self._topic_plugins: list[BaseTopicPlugin] = [
            plugin for plugin in self.plugins_manager.plugins if isinstance(plugin, BaseTopicPlugin)
        ]
        self._subscriptions: SubscriptionIndex = SubscriptionIndex()
        self._retained_messages: RetainedIndex = RetainedIndex()

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        """amqtt's version, with a longer accept queue than asyncio's default of 100 for TCP listeners."""
        if listener_type != ListenerType.TCP:
            return await super()._create_server_instance(listener_name, listener_type, address, port, ssl_context)
        return await asyncio.start_server(
            partial(self.stream_connected, listener_name=listener_name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            backlog=ACCEPT_BACKLOG,
        )

    # --- connections -------------------------------------------------------------------------------------

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        await self._client_connected(
            listener_name, _LimitedReader(reader, self._max_payload_bytes), StreamWriterAdapter(writer)
        )

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """amqtt's version, authenticating before any existing session is deleted, reused or taken over."""
        peer = f"{remote_address}:{remote_port}"
        try:
            handler, session = await asyncio.wait_for(self._read_connect(reader, writer), CONNECT_TIMEOUT_S)
        except Exception as exc:  # timeout, malformed or refused CONNECT (a CONNACK was sent where possible)
            await _close_quietly(writer)
            raise MQTTError(f"no acceptable CONNECT from {peer}: {exc!r}") from None

        refusal = await self._admit(session)
        if refusal is not None:
            with contextlib.suppress(Exception):
                await ConnackPacket.build(0, refusal).to_stream(writer)
            await _close_quietly(writer)
            raise MQTTError(f"connection from {peer} (client id {session.client_id!r}) refused ({refusal})")

        client_id: str = session.client_id
        existing = self._sessions.get(client_id)
        if existing is not None:
            old_session, old_handler = existing
            if old_session.username != session.username:
                # Only the hub account gets here (_admit refuses everyone else): start from a clean slate.
                log.warning("the hub account takes over client id %r from %r", client_id, old_session.username)
                await self._cleanup_session(client_id)
            elif old_session.transitions.is_connected():
                await self._end_connection(old_session, old_handler)

        if session.clean_session:
            await self._delete_session(client_id)
            session.parent = 0
        elif client_id in self._sessions:
            kept, _ = self._sessions[client_id]
            for attribute in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "will_retain",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(kept, attribute, getattr(session, attribute))
            session = kept
            session.parent = 1
        else:
            session.parent = 0

        if session.keep_alive > 0:
            session.keep_alive = math.ceil(session.keep_alive * KEEPALIVE_FACTOR)
        # BrokerProtocolHandler.handle_read_timeout is a no-op in amqtt; the reader loop calls this one.
        handler.handle_read_timeout = partial(self._keepalive_expired, handler)
        if isinstance(reader, _LimitedReader):
            if self._policy.is_hub(session.username):
                reader.limit = None
            else:
                reader.overloaded = partial(self._overloaded, session)
        session.attributes[_ADMITTED] = True
        return handler, session

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        """amqtt's version, replaying retained messages for the connecting session's own filters only.

        amqtt calls ``_publish_retained_messages_for_subscription`` for every filter of every client (and
        iterates the live dict across awaits); with 10,000 devices that is 40,000 calls per connect.
        """
        authenticated = await self._authenticate(client_session, self.listeners_config[listener_name])
        if client_session.client_id is None:
            raise BrokerError("Client ID was not correctly created/set.")
        while True:
            try:
                client_session.transitions.connect()
                break
            except (MachineError, ValueError):
                if client_session.transitions.is_connected():
                    log.warning("MQTT client %s is already connected, taking over", client_session.client_id)
                    old_session = self._sessions[client_session.client_id]
                    await old_session[1].handle_connection_closed()
                    await old_session[1].stop()
                    break
                await asyncio.sleep(1)  # "reconnecting too quickly"
        handler.attach(client_session, reader, writer)
        self._sessions[client_session.client_id] = (client_session, handler)
        await handler.mqtt_connack_authorize(authenticated)
        if not authenticated:
            await writer.close()
            return
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_CONNECTED, client_id=client_session.client_id, client_session=client_session
        )
        await handler.start()
        await self._publish_session_retained_messages(client_session)
        for topic_filter in self._subscriptions.filters_of(client_session.client_id):
            await self._publish_retained_messages_for_subscription((topic_filter, QOS_0), client_session)
        await self._client_message_loop(client_session, handler)

    async def _read_connect(
        self, reader: ReaderAdapter, writer: WriterAdapter
    ) -> tuple[BrokerProtocolHandler, Session]:
        if isinstance(reader, _LimitedReader):
            kind, name, level = await reader.connect_protocol()
            if kind >> 4 == 1 and (name, level) != ("MQTT", 4):  # a CONNECT, but not MQTT 3.1.1
                await ConnackPacket.build(0, UNACCEPTABLE_PROTOCOL_VERSION).to_stream(writer)
                raise MQTTError(f"protocol {name} level {level} is not supported, only MQTT 3.1.1 (level 4)")
        result: tuple[BrokerProtocolHandler, Session] = await BrokerProtocolHandler.init_from_connect(
            reader, writer, self.plugins_manager
        )
        return result

    async def _admit(self, session: Session) -> int | None:
        """``None`` to accept this CONNECT, else the CONNACK return code refusing it."""
        if not await super()._authenticate(session, None):
            code: int = session.attributes.pop(_REFUSAL, NOT_AUTHORIZED)
            return code
        username = session.username
        if not self._policy.is_hub(username):
            existing = self._sessions.get(session.client_id)
            if existing is not None and existing[0].username != username:
                log.warning(
                    "MQTT connection of %s refused: client id %r belongs to another account",
                    username,
                    session.client_id,
                )
                return IDENTIFIER_REJECTED
        if session.will_flag and not self._policy.allowed(username, session.will_topic, Action.PUBLISH):
            log.info("MQTT connection of %s refused: may not publish its will to %r", username, session.will_topic)
            return NOT_AUTHORIZED
        return None

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        # _handle_client_session asks again; the answer was given in _initialize_client_session.
        if session.attributes.pop(_ADMITTED, False):
            return True
        accepted: bool = await super()._authenticate(session, listener)
        return accepted

    def _overloaded(self, session: Session) -> bool:
        """Is the broker holding too many of this device's (or everybody's) messages to read more?"""
        own: int = session.delivered_message_queue.qsize()
        return own > CLIENT_BACKLOG or self.backlog > HUB_BACKLOG

    def _keepalive_expired(self, handler: BrokerProtocolHandler) -> None:
        session = handler.session
        log.info(
            "MQTT client %s silent for longer than 1.5 x its keep-alive: disconnecting",
            session.client_id if session is not None else "?",
        )
        self._spawn(handler.handle_connection_closed())

    async def _end_connection(self, session: Session, handler: BrokerProtocolHandler) -> None:
        """Close a live connection as if its socket dropped (its will is published) and wait for amqtt."""
        await handler.handle_connection_closed()
        await _until_disconnected(session)

    async def disconnect(self, client_id_or_username: str) -> int:
        """Drop the connections and sessions of a device; the hub account's sessions are left alone."""
        victims = [
            (client_id, session)
            for client_id, (session, _handler) in list(self._sessions.items())
            if (client_id == client_id_or_username or session.username == client_id_or_username)
            and not self._policy.is_hub(session.username)
        ]
        for client_id, session in victims:
            was_connected = session.transitions.is_connected()
            await self._cleanup_session(client_id)
            if was_connected:
                await _until_disconnected(session)
        return len(victims)

    # --- subscriptions -------------------------------------------------------------------------------------

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        qos: int = await super().add_subscription(subscription, session)
        if qos != SUBSCRIPTION_REFUSED:
            self._subscriptions.subscribed(session.client_id, subscription[0])
        return qos

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        deleted: int = super()._del_subscription(a_filter, session)
        if deleted:
            self._subscriptions.unsubscribed(session.client_id, a_filter)
        return deleted

    async def _del_all_subscriptions(self, session: Session) -> None:
        """amqtt's version, visiting the session's own filters instead of every filter of every client."""
        for topic_filter in self._subscriptions.filters_of(session.client_id):
            if self._del_subscription(topic_filter, session) and not self._subscriptions.get(topic_filter, True):
                del self._subscriptions[topic_filter]

    # --- routing -------------------------------------------------------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        # amqtt's version wraps every plugin call in a task and gathers them, for every message and every
        # subscriber; awaiting the plugins in turn gives the same answer without the scheduling.
        for plugin in self._topic_plugins:
            if not await plugin.topic_filtering(session=session, topic=topic, action=action):
                return False
        return True

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """amqtt's version, routing a batch of queued messages per call, iterating over snapshots of the
        subscriptions (amqtt's iterated the live dict across awaits: a subscription added or removed meanwhile
        raised RuntimeError and the message was lost for everyone), and keeping QoS 1/2 messages whose
        delivery to a persistent session was cut by a disconnect (see :meth:`_deliver`)."""
        broadcast = await self._broadcast_queue.get()
        for _ in range(BROADCAST_BATCH):
            await self._route(broadcast, running_tasks)
            if self._broadcast_queue.empty():
                break
            broadcast = self._broadcast_queue.get_nowait()

    async def _route(self, broadcast: dict[str, Any], running_tasks: deque[asyncio.Task[Any]]) -> None:
        topic: str = broadcast["topic"]
        matching = [
            subscriptions
            for topic_filter in self._subscriptions.candidates(topic)
            if self._matches(topic, topic_filter) and (subscriptions := self._subscriptions.get(topic_filter))
        ]
        for subscriptions in matching:
            for target, subscription_qos in list(subscriptions):
                qos: int = broadcast.get("qos", subscription_qos)
                if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                    continue
                if not target.transitions.is_connected():
                    if not target.clean_session and qos in (QOS_1, QOS_2) and not target.is_anonymous:
                        await self._retain_broadcast_message(broadcast, qos, target)  # kept for its return
                    continue
                handler = self._get_handler(target)
                if handler is None:
                    continue
                if target.attributes.get(_BACKLOG, 0) >= CLIENT_BACKLOG:  # a device not reading its socket
                    log.warning(
                        "MQTT client %s is not reading its messages: dropped one on %s", target.client_id, topic
                    )
                    continue
                if qos == QOS_0 or target.clean_session:
                    delivery = handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                else:
                    delivery = self._deliver(handler, target, broadcast, qos)
                task = asyncio.ensure_future(delivery)
                running_tasks.append(task)
                if self._policy.is_hub(target.username):
                    self._hub_backlog += 1
                    task.add_done_callback(self._hub_delivery_done)
                else:
                    target.attributes[_BACKLOG] = target.attributes.get(_BACKLOG, 0) + 1
                    task.add_done_callback(partial(_device_delivery_done, target))

    @property
    def backlog(self) -> int:
        routing: int = self._broadcast_queue.qsize()
        return routing + self._hub_backlog

    def _hub_delivery_done(self, _task: asyncio.Task[Any]) -> None:
        self._hub_backlog -= 1

    async def _deliver(
        self, handler: BrokerProtocolHandler, session: Session, broadcast: dict[str, Any], qos: int
    ) -> None:
        """Send a QoS 1/2 message to a persistent session; if its connection goes away before the
        acknowledgement, keep the message for the session's next connection (at least once).

        amqtt forgets such a message: the PUBACK waiter is cancelled and the message leaves
        ``session.inflight_out`` before ``_retry_deliveries`` could ever resend it.
        """

        def still_this_connection() -> bool:
            return bool(session.transitions.is_connected()) and self._get_handler(session) is handler

        try:
            await handler.mqtt_publish(broadcast["topic"], broadcast["data"], qos, retain=False)
            return
        except asyncio.CancelledError:  # amqtt cancels the PUBACK wait when the connection closes
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the broker is shutting down
        except TimeoutError:  # amqtt waits 5 s for the PUBACK
            if still_this_connection():
                return  # written to a live connection; only the PUBACK is late (a slow, manual-ack client)
        except Exception:
            log.debug("delivery to %s failed", session.client_id, exc_info=True)
        # Wait until amqtt has noticed the disconnect (or a new connection has already replaced this one).
        await _until_false(still_this_connection, TAKEOVER_WAIT_S)
        if self._sessions.get(session.client_id, (None, None))[0] is not session:
            return  # the session is gone (kicked, expired or cleaned)
        current_handler = self._get_handler(session)
        if session.transitions.is_connected():
            if current_handler is handler:
                return  # still connected: the message was written, only the PUBACK is late
            self._spawn(self._deliver(current_handler, session, broadcast, qos))  # a new connection took over
        else:
            await self._retain_broadcast_message(broadcast, qos, session)

    # --- retained messages ---------------------------------------------------------------------------------

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        holders = self._subscriptions.get(topic_filter, ())
        if all(holder.client_id != session.client_id for holder, _ in holders):
            return  # amqtt replays every client's filters at connect; only the session's own count
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = [
            asyncio.ensure_future(
                handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), retain=True)
            )
            for topic, retained in self._retained_messages.candidates(topic_filter)
            if self._matches(topic, topic_filter) and self._policy.allowed(session.username, topic, Action.RECEIVE)
        ]
        if tasks:
            await asyncio.wait(tasks)

    # --- misc ----------------------------------------------------------------------------------------------

    @classmethod
    def _split_bindaddr_port(cls, port_str: str, default_port: int) -> tuple[str | None, int]:
        address, port = super()._split_bindaddr_port(port_str, default_port)
        if address is not None and address.startswith("[") and address.endswith("]"):
            address = address[1:-1]  # amqtt keeps the brackets of an IPv6 literal, which getaddrinfo refuses
        return address, int(port)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def wait_side_tasks(self) -> None:
        while self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)

    @property
    def bound_port(self) -> int | None:
        server = self._servers.get("default")
        if server is None or server.instance is None or not server.instance.sockets:
            return None
        return int(server.instance.sockets[0].getsockname()[1])


async def _until_disconnected(session: Session) -> None:
    """Wait (a bounded time) until amqtt's client loop has marked ``session`` disconnected."""
    await _until_false(session.transitions.is_connected, TAKEOVER_WAIT_S)


def _device_delivery_done(session: Session, _task: asyncio.Task[Any]) -> None:
    session.attributes[_BACKLOG] -= 1


async def _close_quietly(writer: WriterAdapter) -> None:
    with contextlib.suppress(Exception):
        await writer.close()
