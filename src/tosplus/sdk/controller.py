"""A controller's session connection (the phone side): the game pad, the remote control, text and apps.

After pairing (``tosplus.sdk.pairing.ControllerPairing`` and the hub's pairing API, docs/sessions.md), the phone
opens the session's WebSocket and plays::

    async with ControllerSession.connect(hub, session_id, access_token, resume_token) as pad:
        pad.on_screen_message(lambda data: show(data.get("score")))
        await pad.send_input(buttons=0b101, axes=[0.0, -1.0])      # up to 60 times a second; seq and t_sent filled in
        await pad.remote("volume_up")
        state = await pad.launch_app("youtube", {"v": "abc"})    # the screen's answer: {"state": "running", ...}
        await pad.send_to_screen({"rtt_ms": 4.2})                  # the phone's own message to its screen

The hub keeps only the newest input frame when the screen falls behind, and drops frames that arrive out of
order. Everything else the hub sends is in ``events`` (``next(kind)`` waits for one).
Needs ``websockets`` besides the SDK's own dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tosplus.sdk.errors import DeviceError
from tosplus.sdk.urls import websocket_url

log = logging.getLogger("tosplus.sdk.controller")

ScreenHandler = Callable[[dict[str, Any]], Any]


class SessionClosed(DeviceError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def controller_url(hub: str, session_id: str) -> str:
    """``ws://host:port/api/v1/sessions/<id>/ws`` from a hub's base URL (http, https, ws or wss)."""
    return websocket_url(hub, f"/api/v1/sessions/{session_id}/ws")


class ControllerSession:
    """An open session WebSocket: input frames, remote keys, text, apps; ``events`` gets all the hub sends
    after ``welcome`` (``keep_events=False`` keeps only what handlers and waiting requests take)."""

    def __init__(self, ws: Any, welcome: dict[str, Any], *, keep_events: bool = True) -> None:
        self.ws = ws
        self.welcome = welcome
        self.session_id: str = welcome.get("session", {}).get("session_id", "")
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.keep_events = keep_events
        self.close_code: int | None = None
        self.errors = 0
        self._seq = itertools.count(1)
        self._screen_handlers: list[ScreenHandler] = []
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        hub: str,
        session_id: str,
        token: str,
        resume_token: str,
        *,
        keepalive_s: float | None = 5.0,
        keep_events: bool = True,
        ssl: Any = None,
    ) -> AsyncIterator[ControllerSession]:
        """Open (or resume) the session's WebSocket; closed when the block ends."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url = controller_url(hub, session_id)
        async with connect(url, ping_interval=None, compression=None, proxy=None, ssl=ssl) as ws:
            await ws.send(orjson.dumps({"type": "hello", "token": token, "resume_token": resume_token}).decode())
            try:
                first = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            except ConnectionClosed:
                raise SessionClosed(ws.close_code or 0, ws.close_reason or "closed") from None
            if first.get("type") != "welcome":
                raise SessionClosed(0, f"unexpected first message {first.get('type')!r}")
            session = cls(ws, first, keep_events=keep_events)
            session.start(keepalive_s)
            try:
                yield session
            finally:
                await session.stop()

    def start(self, keepalive_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read())
        if keepalive_s:
            self._pinger = loop.create_task(self._keepalive(keepalive_s))

    async def stop(self) -> None:
        for task in (self._reader, self._pinger):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    # -- sending --------------------------------------------------------------------------------------------

    async def send(self, doc: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(doc).decode())

    async def send_input(self, buttons: int, axes: list[float] | tuple[float, ...] = ()) -> int:
        """One game-pad frame (``buttons``: 32-bit mask, ``axes``: up to 8 values in -1..1); returns its ``seq``."""
        seq = next(self._seq)
        frame = {"type": "input", "seq": seq, "t_sent": time.time() * 1000, "buttons": buttons, "axes": list(axes)}
        await self.ws.send(orjson.dumps(frame).decode())
        return seq

    async def remote(self, key: str) -> None:
        """A remote-control key: power, volume_up, volume_down, mute, channel_up, channel_down, up, down, left,
        right, ok, back, home, menu, play_pause."""
        await self.send({"type": "remote", "key": key})

    async def text(self, text: str) -> None:
        """Text typed on the phone, for the screen's focused field (at most 500 characters)."""
        await self.send({"type": "text", "text": text})

    async def launch_app(
        self, app_id: str, params: dict[str, Any] | None = None, timeout_s: float = 5.0
    ) -> dict[str, Any]:
        return await self._app("launch", app_id, params or {}, timeout_s)

    async def stop_app(self, app_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        return await self._app("stop", app_id, {}, timeout_s)

    async def app_status(self, app_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        return await self._app("status", app_id, {}, timeout_s)

    async def send_to_screen(self, data: dict[str, Any]) -> None:
        """The phone's own message to its screen (it gets ``from_controller {session_id, slot, data}``): a
        latency report, a direct path's signalling. At most 20 a second; not for input."""
        await self.send({"type": "to_screen", "data": data})

    def on_screen_message(self, handler: ScreenHandler) -> None:
        """``handler(data)`` for each ``from_screen`` message (the game's state for this player, echoes)."""
        self._screen_handlers.append(handler)

    async def next(self, kind: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        """The next event (of ``kind``, skipping others)."""
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.events.get()
                if kind is None or event.get("type") == kind:
                    return event

    async def ping(self) -> float:
        """Round trip through the hub in milliseconds."""
        sent = time.perf_counter()
        await self.send({"type": "ping", "t": time.time() * 1000})
        await self.next("pong")
        return (time.perf_counter() - sent) * 1000

    # -- inside ---------------------------------------------------------------------------------------------

    async def _app(self, op: str, app_id: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        request_id = os.urandom(8).hex()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.send({"type": "app", "op": op, "app_id": app_id, "params": params, "request_id": request_id})
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise DeviceError(f"the screen did not answer about '{app_id}' within {timeout_s:g} s") from None
        finally:
            self._waiting.pop(request_id, None)

    async def _read(self) -> None:
        ws = self.ws
        with contextlib.suppress(Exception):
            async for raw in ws:
                doc = orjson.loads(raw)
                kind = doc.get("type")
                if kind == "from_screen" and isinstance(doc.get("data"), dict):
                    for handler in self._screen_handlers:
                        try:
                            handler(doc["data"])
                        except Exception:  # a handler's bug must not stop the session
                            log.exception("screen message handler failed")
                elif kind == "app.state":
                    waiting = self._waiting.get(str(doc.get("request_id")))
                    if waiting is not None and not waiting.done():
                        waiting.set_result(doc)
                elif kind == "error":
                    self.errors += 1
                if self.keep_events:
                    self.events.put_nowait(doc)
        self.close_code = ws.close_code
        self.events.put_nowait({"type": "socket.closed", "code": ws.close_code, "reason": ws.close_reason})

    async def _keepalive(self, every_s: float) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(every_s)
                await self.send({"type": "ping", "t": time.time() * 1000})


__all__ = ["ControllerSession", "SessionClosed", "controller_url"]
