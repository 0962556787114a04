"""The hub's WebSocket protocol: uvicorn's sans-I/O one, plus a direct path for sockets that carry 60 Hz input.

Through ASGI, every message a client sends costs the hub a queue entry, a pause and resume of the socket's
reads, a wake-up of the route's task and Starlette's wrappers around ``receive`` — about three quarters of
what relaying one game-pad frame costs (BENCHMARKS.md, "Game pad relay"). A route that handles its messages
without awaiting anything can take them straight from the frame parser instead: it finds a :class:`Direct`
in ``scope["extensions"]["tosplus.direct"]`` and calls :meth:`Direct.take` with its handler; from then on
each complete message is handed to the handler inside ``data_received``, in order, and ``send_text`` writes
a message to the socket at once. The route still awaits ``receive()`` for the end of the connection
(``websocket.disconnect`` keeps going through the queue), and everything else of the connection — the
handshake, ping/pong, close, permessage-deflate, message size limits — stays uvicorn's and websockets'.

Routes that do not ask (and servers without this protocol, e.g. test clients) work as before: the extension
is only a fast path, never a requirement.

Connections to the paths given to :func:`direct_protocol` as ``uncompressed`` (the hub's session sockets) do
not agree permessage-deflate — their messages are ~100 bytes, and inflating each costs 4 to 6 µs — and so can
have their frames read by :class:`~tosplus.api.ws_frames.FrameReader` instead of websockets' general parser.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState, ProtocolError
from websockets.frames import Close, Frame, Opcode

from tosplus.api.ws_frames import BINARY, CLOSE, PING, PONG, TEXT, FrameError, FrameReader

EXTENSION = "tosplus.direct"
log = logging.getLogger(__name__)

Handler = Callable[[str | bytes], None]


class Direct:
    """One connection's direct path (see the module's text); made by the protocol for each connection."""

    __slots__ = ("_protocol", "handler")

    def __init__(self, protocol: DirectWebSocketProtocol) -> None:
        self._protocol = protocol
        self.handler: Handler | None = None

    def take(self, handler: Handler) -> None:
        """Hand every message from now on to ``handler`` (called in the event loop's read callback: it must
        not block, and what it raises closes the connection with 1011). Messages that arrived before and still
        wait in the ASGI queue go to it first, so the order holds."""
        protocol = self._protocol
        self.handler = handler
        waiting = []
        while not protocol.queue.empty():
            waiting.append(protocol.queue.get_nowait())
        for message in waiting:
            if message["type"] == "websocket.receive":
                data = message.get("text")
                protocol.deliver(data if data is not None else message.get("bytes") or b"")
            else:  # the end of the connection: the route sees it through receive() as before
                protocol.queue.put_nowait(message)
        if protocol.read_paused:
            protocol.read_paused = False
            protocol.transport.resume_reading()

    def send_text(self, text: str) -> bool:
        """Write ``text`` as one message now; ``False`` when the connection can no longer take it."""
        return self._protocol.write_text(text)

    async def wait_writable(self) -> None:
        """Until the socket's write buffer is below its high-water mark (at once when it is)."""
        await self._protocol.writable.wait()


def direct_of(scope: Any) -> Direct | None:
    """The connection's direct path, when the server offers one."""
    extensions = scope.get("extensions") or {}
    direct = extensions.get(EXTENSION)
    return direct if isinstance(direct, Direct) else None


def direct_protocol(uncompressed: tuple[str, ...] = ()) -> type[DirectWebSocketProtocol]:
    """The protocol class to give uvicorn (``ws=``): connections to paths starting with one of
    ``uncompressed`` agree no compression and have their frames read by the fast reader."""
    return type("HubWebSocketProtocol", (DirectWebSocketProtocol,), {"uncompressed": uncompressed})


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with :class:`Direct` in each WebSocket scope."""

    uncompressed: tuple[str, ...] = ()

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(config, server_state, app_state, **kwargs)
        self.direct = Direct(self)
        self.reader: FrameReader | None = None

    def handle_connect(self, event: Any) -> None:
        fast = self.uncompressed and str(event.path).startswith(self.uncompressed)
        if fast:
            self.conn.available_extensions = []
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self.direct
        if fast and self.response.status_code == 101 and not self.conn.extensions:
            self.reader = FrameReader(self.config.ws_max_size)
            rest = bytes(self.conn.reader.buffer)  # a client may not send frames before the answer; if it did
            self.conn.reader.buffer.clear()
            if rest:
                self.loop.call_soon(self.data_received, rest)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            super().data_received(data)
            return
        try:
            messages = reader.feed(data)
        except FrameError as exc:
            self.fail(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode in (TEXT, BINARY):
                self.curr_msg_data_type = "text" if opcode == TEXT else "bytes"
                self.frames = [payload]
                self.send_receive_event_to_app()
            elif opcode == PING:
                if not self.close_sent:
                    self.conn.send_pong(payload)
                    self.transport.write(b"".join(self.conn.data_to_send()))
            elif opcode == PONG:
                self.handle_pong(Frame(Opcode.PONG, payload))
            elif opcode == CLOSE:
                self.close_received(payload)
                return
            if self.transport.is_closing():
                return

    def close_received(self, payload: bytes) -> None:
        """The peer's close frame, read by the fast reader: what uvicorn's ``handle_close`` does."""
        if self.close_sent:  # the answer to the hub's close: the closing handshake is complete
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.transport.close()
            return
        try:
            close = Close.parse(payload)
        except (ProtocolError, UnicodeDecodeError):
            self.fail(1002, "an invalid close frame")
            return
        if self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        with contextlib.suppress(InvalidState, ProtocolError):
            if close.code == 1005:  # no status code: answer likewise
                self.conn.send_close()
            else:
                self.conn.send_close(close.code, close.reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def fail(self, code: int, reason: str) -> None:
        """End the connection for a broken frame or a failed handler: close frame, disconnect, transport."""
        if self.close_sent or self.transport.is_closing():
            self.transport.close()
            return
        self.conn.send_close(code, reason)
        self.handle_parser_exception()

    def send_receive_event_to_app(self) -> None:
        if self.direct.handler is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:  # closing: what still comes in is not read, as uvicorn does
            return
        if self.curr_msg_data_type == "text":
            try:
                self.deliver(data.decode())
            except UnicodeDecodeError:
                self.fail(1007, "text messages are UTF-8")
            return
        self.deliver(data)

    def deliver(self, data: str | bytes) -> None:
        handler = self.direct.handler
        assert handler is not None
        try:
            handler(data)
        except Exception:
            log.exception("a WebSocket message handler failed; the connection is closed")
            self.fail(1011, "internal error")

    def write_text(self, text: str) -> bool:
        if self.close_sent or self.disconnected or not self.handshake_complete or self.transport.is_closing():
            return False
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True
