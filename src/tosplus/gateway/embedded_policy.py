"""Who may use the embedded MQTT broker: the access policy, amqtt's auth and topic plugins, and the socket reader
that limits what a device may send.

:class:`~tosplus.gateway.embedded.EmbeddedBroker` registers :class:`TosAuthPlugin` and :class:`TosTopicPlugin`
by class path (how amqtt loads them is described in :mod:`tosplus.gateway.embedded`); the broker in
:mod:`tosplus.gateway.embedded_amqtt` asks the same :class:`_Policy` directly and reads each connection through
a :class:`_LimitedReader`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from amqtt.adapters import StreamReaderAdapter
from amqtt.contexts import Action
from amqtt.mqtt import connack
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from tosplus.gateway import topics
from tosplus.gateway.topics import PREFIX

__all__ = ["TosAuthPlugin", "TosTopicPlugin"]

log = logging.getLogger("tosplus.gateway.embedded")  # one logger name for the whole embedded broker

AUTH_TIMEOUT_S: Final = 10.0
"""An ``authenticate`` call slower than this refuses the connection."""

_REFUSAL: Final = "tosplus.refusal"
_RANDOM_CLIENT_ID_PREFIX: Final = "amqtt/"  # what amqtt assigns to an empty client id
_FORBIDDEN_IN_USERNAME: Final = frozenset("/+#\x00")

# CONNACK return codes of MQTT 3.1.1 (typed here: amqtt ships no type information).
IDENTIFIER_REJECTED: Final[int] = connack.IDENTIFIER_REJECTED
BAD_USERNAME_PASSWORD: Final[int] = connack.BAD_USERNAME_PASSWORD
NOT_AUTHORIZED: Final[int] = connack.NOT_AUTHORIZED


class _TooLarge(Exception):
    """A device sent a field larger than the payload limit: amqtt's reader loop drops the connection.

    Deliberately not an amqtt ``MQTTError``: the reader loop would swallow that and read on from the
    middle of the packet.
    """


class _Policy:
    """Who may connect and which topics they may use; shared by both plugins and the broker."""

    def __init__(
        self,
        authenticate: Callable[[str, str], Awaitable[bool]],
        hub_username: str,
        hub_password: str,
    ) -> None:
        self._authenticate = authenticate
        self.hub_username = hub_username
        self._hub_username_b = hub_username.encode()
        self._hub_password_b = hub_password.encode()

    def is_hub(self, username: str | None) -> bool:
        return username is not None and username == self.hub_username

    async def authenticate(self, session: Session) -> bool:
        """Check the CONNECT's credentials; on refusal leave the CONNACK code in the session's attributes."""
        username = session.username
        password = session.password or ""
        if not username:
            session.attributes[_REFUSAL] = NOT_AUTHORIZED
            log.info("MQTT connection %s refused: anonymous", session.client_id)
            return False
        if hmac.compare_digest(username.encode(), self._hub_username_b):
            if hmac.compare_digest(password.encode(), self._hub_password_b):
                return True
            session.attributes[_REFUSAL] = BAD_USERNAME_PASSWORD
            log.warning("MQTT connection refused: wrong password for the hub account")
            return False
        if _FORBIDDEN_IN_USERNAME.intersection(username):
            session.attributes[_REFUSAL] = BAD_USERNAME_PASSWORD
            log.info("MQTT connection refused: username %r is not a device id", username)
            return False
        client_id = session.client_id or ""
        if client_id != username and not client_id.startswith(_RANDOM_CLIENT_ID_PREFIX):
            session.attributes[_REFUSAL] = IDENTIFIER_REJECTED
            log.info("MQTT connection of device %s refused: client id %r is not its device id", username, client_id)
            return False
        try:
            accepted = await asyncio.wait_for(self._authenticate(username, password), AUTH_TIMEOUT_S)
        except Exception:
            log.exception("MQTT connection of device %s refused: checking its credentials failed", username)
            accepted = False
        if accepted is not True:
            session.attributes.setdefault(_REFUSAL, BAD_USERNAME_PASSWORD)
            log.info("MQTT connection of device %s refused: wrong credentials", username)
            return False
        return True

    def allowed(self, username: str | None, topic: str | None, action: Action | None) -> bool:
        """May this account publish to / subscribe to / receive from ``topic`` (a name or a filter)?"""
        if not username or not topic:
            return False
        if self.is_hub(username):
            return True
        if action == Action.PUBLISH:
            # Only the device → hub topics of its own subtree (see topics.device_publish_filters).
            return topics.device_may_publish(username, topic)
        # The username has no '/', '+' or '#' (checked at CONNECT), so every name or filter starting with
        # this prefix stays inside the device's own subtree.
        return topic.startswith(f"{PREFIX}{username}/")


class TosAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt authentication plugin: the hub account, or a device checked by the hub's ``authenticate``."""

    @dataclass
    class Config:
        policy: _Policy | None = None

    async def authenticate(self, *, session: Session) -> bool:
        policy: _Policy | None = self.config.policy
        if policy is None:
            return False
        return await policy.authenticate(session)


class TosTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt topic plugin: a device stays inside ``tos/v1/{its id}/``; the hub account may do anything."""

    @dataclass
    class Config:
        policy: _Policy | None = None

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        policy: _Policy | None = self.config.policy
        if policy is None or session is None:
            return False
        return policy.allowed(session.username, topic, action)


class _LimitedReader(StreamReaderAdapter):  # type: ignore[misc]  # amqtt ships no type information
    """A socket reader refusing any single read (payload, string) larger than ``limit`` bytes.

    It can also look at the protocol of the CONNECT before amqtt parses it (:meth:`connect_protocol`).
    """

    def __init__(self, reader: asyncio.StreamReader, limit: int | None) -> None:
        super().__init__(reader)
        self._stream = reader
        self._pushed_back = b""
        self.limit = limit
        self.overloaded: Callable[[], bool] | None = None

    async def read(self, n: int = -1) -> bytes:
        if self.limit is not None and n > self.limit:
            raise _TooLarge(f"an MQTT packet field of {n} bytes is over the limit of {self.limit} bytes")
        if self.overloaded is not None and self.overloaded():
            await _until_false(self.overloaded)  # stop reading this socket: TCP pushes back on the device
        if self._pushed_back:
            if n < 0:
                rest = self._pushed_back + await self._stream.read()
                self._pushed_back = b""
                return rest
            head, self._pushed_back = self._pushed_back[:n], self._pushed_back[n:]
            return head + (await self._stream.readexactly(n - len(head)) if n > len(head) else b"")
        data: bytes = await super().read(n)
        return data

    async def connect_protocol(self) -> tuple[int, str, int]:
        """Peek at the first packet: (packet type byte, protocol name, protocol level); nothing is consumed.

        amqtt parses a whole CONNECT before looking at its protocol level, and an MQTT 5 CONNECT (which has
        properties) derails that parse until the socket closes.
        """
        seen = bytearray(await self._stream.readexactly(2))
        while seen[-1] & 0x80 and len(seen) < 5:  # remaining length: variable byte integer
            seen += await self._stream.readexactly(1)
        seen += await self._stream.readexactly(2)
        name_length = int.from_bytes(seen[-2:], "big")
        if name_length > 6:  # neither "MQTT" nor "MQIsdp": let amqtt refuse it
            self._pushed_back = bytes(seen)
            return seen[0], "", 0
        seen += await self._stream.readexactly(name_length + 1)
        self._pushed_back = bytes(seen)
        return seen[0], seen[-1 - name_length : -1].decode("latin-1"), seen[-1]


async def _until_false(condition: Callable[[], bool], limit_s: float | None = None) -> None:
    """Poll ``condition`` until it is false (or ``limit_s`` has passed).

    amqtt's session states and queues signal nothing, so there is no event to wait on; these waits are
    rare (disconnects) or happen under overload, where a short sleep costs nothing.
    """
    loop = asyncio.get_running_loop()
    deadline = None if limit_s is None else loop.time() + limit_s
    while condition() and (deadline is None or loop.time() < deadline):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
