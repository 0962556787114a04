"""A WebSocket as a session :class:`~tosplus.services.sessions.sessions.Link`: ``send`` queues and returns at
once (one writer task per connection keeps the order), ``close`` ends the connection after what was queued.

``send_latest`` is for game-pad input: a :class:`Latest` holds at most one frame per controller; a newer frame
replaces one the socket has not taken yet (coalesced) instead of queueing behind it, so a slow screen gets the
newest state late rather than every old state later.

A screen that said ``"batch": true`` in its hello (``batch``) gets the input frames waiting for it when its
writer runs as one message, ``{"type": "inputs", "frames": [...]}``, instead of one message each: a WebSocket
send (ASGI layers, framing, a socket write) costs the hub more than relaying the frame itself, and under load
many frames wait at once. Frames are kept as JSON text, so a batch is a join, not a second encoding.

Where the hub's WebSocket protocol offers its direct path (``tosplus.api.ws_direct``), the writer writes each
message to the socket itself instead of through ASGI's ``send`` (and waits only while the socket's write
buffer is full).

A side that does not read what it is sent fills its queue; it is then disconnected (``4408``) rather than the
hub buffering without bound or the sender waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import orjson
from starlette.websockets import WebSocket

from tosplus.api.ws_direct import direct_of

QUEUE = 512
_CLOSE = object()
_BATCH_HEAD = '{"type":"inputs","frames":['


class Latest:
    """The one pending input frame of a controller on its screen's link (``None`` once the writer took it)."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None


class WsLink:
    def __init__(self, websocket: WebSocket, queue: int = QUEUE, *, batch: bool = False) -> None:
        self.websocket = websocket
        self.direct = direct_of(websocket.scope)
        self.batch = batch
        self.closed = False
        self.close_code = 1000
        self.close_reason = ""
        self._limit = queue
        # A deque and an event rather than an asyncio.Queue: the writer looks at what waits behind the frame
        # it took, to put every input frame waiting in a row into one batch.
        self._queue: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="session-link")

    def send(self, doc: dict[str, Any]) -> None:
        if self.closed:
            return
        if not self._put(orjson.dumps(doc).decode()):
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
        if not self._put(latest):
            latest.text = None
            self.close(4408, "too slow to read what it is sent")
        return False

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed, self.close_code, self.close_reason = True, code, reason
        if len(self._queue) >= self._limit:  # no room for the marker: drop what waits, the connection ends anyway
            self._queue.clear()
        self._queue.append(_CLOSE)
        self._ready.set()

    def _put(self, item: Any) -> bool:
        if len(self._queue) >= self._limit:
            return False
        self._queue.append(item)
        self._ready.set()
        return True

    async def _write(self) -> None:
        items, ready, websocket, direct = self._queue, self._ready, self.websocket, self.direct
        try:
            while True:
                if not items:
                    ready.clear()
                    await ready.wait()
                    continue
                item = items.popleft()
                if item is _CLOSE:
                    await websocket.close(self.close_code, self.close_reason[:120])
                    return
                if type(item) is Latest:  # taken now: a newer frame from here on queues anew
                    text, item.text = item.text, None
                    if self.batch:
                        text = self._batch(text)
                    if text is None:
                        continue
                    item = text
                if direct is None:
                    await websocket.send_text(item)
                    continue
                await direct.wait_writable()
                if not direct.send_text(item):
                    self.closed = True
                    return
        except Exception:  # the peer is gone: the reader notices and detaches
            self.closed = True

    def _batch(self, first: str | None) -> str | None:
        """``first`` and every input frame queued right behind it (none of another kind jumps the order), as
        one ``inputs`` message; each controller has at most one frame waiting, so at most one is in a batch."""
        frames = [first] if first is not None else []
        items = self._queue
        while items and type(items[0]) is Latest:
            latest = items.popleft()
            if latest.text is not None:
                frames.append(latest.text)
                latest.text = None
        if not frames:
            return None
        return _BATCH_HEAD + ",".join(frames) + "]}"

    async def finish(self) -> None:
        """After the connection ended: let a close that was asked for go out, then stop the writer."""
        if self.closed and not self._writer.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
        self.closed = True
        self._writer.cancel()
        with contextlib.suppress(BaseException):
            await self._writer
