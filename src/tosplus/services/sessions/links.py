"""A WebSocket as a session :class:`~tosplus.services.sessions.sessions.Link`: ``send`` queues and returns at
once (one writer task per connection keeps the order), ``close`` ends the connection after what was queued.

``send_latest`` is for game-pad input: a :class:`Latest` holds at most one frame per controller; a newer frame
replaces one the socket has not taken yet (coalesced) instead of queueing behind it, so a slow screen gets the
newest state late rather than every old state later.

A side that does not read what it is sent fills its queue; it is then disconnected (``4408``) rather than the
hub buffering without bound or the sender waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.websockets import WebSocket

QUEUE = 512
_CLOSE = object()


class Latest:
    """The one pending input frame of a controller on its screen's link (``None`` once the writer took it)."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None


class WsLink:
    def __init__(self, websocket: WebSocket, queue: int = QUEUE) -> None:
        self.websocket = websocket
        self.closed = False
        self.close_code = 1000
        self.close_reason = ""
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue)
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="session-link")

    def send(self, doc: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(orjson.dumps(doc).decode())
        except asyncio.QueueFull:
            self.close(4408, "too slow to read what it is sent")

    def send_latest(self, latest: Latest, doc: dict[str, Any]) -> bool:
        """Queue ``doc`` in ``latest``'s place; ``True`` when it replaced a frame still waiting (coalesced)."""
        if self.closed:
            return False
        text = orjson.dumps(doc).decode()
        if latest.text is not None:
            latest.text = text
            return True
        latest.text = text
        try:
            self._queue.put_nowait(latest)
        except asyncio.QueueFull:
            latest.text = None
            self.close(4408, "too slow to read what it is sent")
        return False

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed, self.close_code, self.close_reason = True, code, reason
        try:
            self._queue.put_nowait(_CLOSE)
        except asyncio.QueueFull:  # no room for the marker: drop what waits, the connection ends anyway
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_CLOSE)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    await self.websocket.close(self.close_code, self.close_reason[:120])
                    return
                if isinstance(item, Latest):  # taken now: a newer frame from here on queues anew
                    text, item.text = item.text, None
                    if text is None:
                        continue
                    item = text
                await self.websocket.send_text(item)
        except Exception:  # the peer is gone: the reader notices and detaches
            self.closed = True

    async def finish(self) -> None:
        """After the connection ended: let a close that was asked for go out, then stop the writer."""
        if self.closed and not self._writer.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
        self.closed = True
        self._writer.cancel()
        with contextlib.suppress(BaseException):
            await self._writer
