"""A screen's session connection to the hub (TV side): shows pairing codes, answers pairings, follows its players.

::

    async with ScreenLink(device_id, secret, "http://hub:8080") as screen:
        screen.on_code(lambda shown: tv.show(shown.text, shown.qr_svg()) if shown else tv.hide_code())
        screen.on_controller(lambda event, doc: tv.players_changed(screen.controllers))
        await screen.wait_connected(10)
        await screen.open_pairing()      # shows a code; a new one after each use, expiry or too many attempts
        screen.on_input(lambda frame: game.move(frame["slot"], frame["buttons"], frame["axes"]))
        screen.on_remote(lambda doc: tv.press(doc["key"]))
        screen.on_app(lambda doc: {"state": tv.launch(doc["app_id"])} if doc["op"] == "launch" else ...)
        await screen.send_to_controller(session_id, {"score": 3})
        screen.on_controller_message(lambda doc: tv.show_latency(doc["slot"], doc["data"].get("rtt_ms")))

The connection is a WebSocket to ``/api/v1/sessions/screen`` with the device's credentials (HTTP Basic),
reconnected with backoff; the pairing code lives and is checked here (``ScreenPairing``), the hub only relays
(docs/sessions.md). Needs ``websockets`` and ``spake2`` besides the SDK's own dependencies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from tosplus.sdk.discovery import new_discriminator
from tosplus.sdk.errors import DeviceError
from tosplus.sdk.pairing import CredentialStore, MemoryCredentials, PairingError, ScreenPairing, ShownCode, b64, unb64
from tosplus.sdk.urls import websocket_url

log = logging.getLogger("tosplus.sdk.screen")

CodeHandler = Callable[[ShownCode | None], Any]
ControllerHandler = Callable[[str, dict[str, Any]], Any]
MessageHandler = Callable[[dict[str, Any]], Any]
AppHandler = Callable[[dict[str, Any]], Any]  # returns {"state", "detail"?}, or None to answer later


def session_url(hub: str) -> str:
    """``ws://host:port/api/v1/sessions/screen`` from a hub's base URL (http, https, ws or wss)."""
    return websocket_url(hub, "/api/v1/sessions/screen")


class ScreenLink:
    def __init__(
        self,
        device_id: str,
        secret: str,
        hub: str,
        *,
        discriminator: int | None = None,
        max_players: int | None = None,
        credentials: CredentialStore | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        auto_renew: bool = True,
        ssl: Any = None,
    ) -> None:
        self.device_id = device_id
        self._secret = secret
        self.url = session_url(hub)
        self.discriminator = new_discriminator() if discriminator is None else discriminator & 0xFFF
        self.max_players = max_players
        self.pairing = ScreenPairing(device_id, credentials if credentials is not None else MemoryCredentials())
        self.auto_renew = auto_renew
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.ssl = ssl
        self.controllers: dict[str, dict[str, Any]] = {}  # session id -> the hub's view of the controller
        self.session_keys: dict[str, bytes] = {}  # controller session id -> the key agreed when it paired
        self._fresh_keys: dict[str, bytes] = {}  # credential id -> key, until the hub names the session
        self.pairing_mode = False
        self.window_id: str | None = None
        self.connects = 0
        self.rtt_ms: float | None = None
        self._ws: Any = None
        self._connected = asyncio.Event()
        self._window_opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keepalive_s = 5.0
        self._pinger: asyncio.Task[None] | None = None
        self._code_handlers: list[CodeHandler] = []
        self._controller_handlers: list[ControllerHandler] = []
        self._pending_users: dict[str, dict[str, Any]] = {}  # attempt -> who is pairing
        self._input_handlers: list[MessageHandler] = []
        self._remote_handlers: list[MessageHandler] = []
        self._text_handlers: list[MessageHandler] = []
        self._controller_message_handlers: list[MessageHandler] = []
        self._app_handler: AppHandler | None = None

    # -- life cycle -----------------------------------------------------------------------------------------

    async def start(self) -> ScreenLink:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"screen-{self.device_id}")
        return self

    async def close(self) -> None:
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._connected.clear()

    async def __aenter__(self) -> ScreenLink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise DeviceError(f"the screen did not reach the hub's session service within {timeout_s} s") from None

    # -- what the screen does -------------------------------------------------------------------------------

    def on_code(self, handler: CodeHandler) -> None:
        """``handler(shown)`` whenever the code to show changes; ``None`` means show none."""
        self._code_handlers.append(handler)

    def on_controller(self, handler: ControllerHandler) -> None:
        """``handler(event, controller)`` for ``controller.joined``, ``.connected``, ``.lost``, ``.resumed``,
        ``.left`` (``controller["reason"]`` says why)."""
        self._controller_handlers.append(handler)

    def on_input(self, handler: MessageHandler) -> None:
        """``handler(frame)`` for each game-pad frame: ``session_id, slot, seq, t_sent, t_hub, buttons, axes``.
        Called synchronously, in order, up to 60 times a second per player: keep it short. (The hub sends the
        frames waiting for this screen together, as one ``inputs`` message; each is handed on alone.)"""
        self._input_handlers.append(handler)

    def on_remote(self, handler: MessageHandler) -> None:
        """``handler({"session_id", "slot", "key"})`` for each remote-control key."""
        self._remote_handlers.append(handler)

    def on_text(self, handler: MessageHandler) -> None:
        """``handler({"session_id", "slot", "text"})`` for text typed on a phone."""
        self._text_handlers.append(handler)

    def on_controller_message(self, handler: MessageHandler) -> None:
        """``handler({"session_id", "slot", "data"})`` for each message a player's phone sends its screen
        (``ControllerSession.send_to_screen``)."""
        self._controller_message_handlers.append(handler)

    def on_app(self, handler: AppHandler) -> None:
        """``handler({"op", "app_id", "params", "request_id", "session_id"})`` for launch / stop / status; it
        returns ``{"state": "running"|"stopped"|"not_installed", "detail"?}`` (or an awaitable of it), or
        ``None`` and answers later with :meth:`answer_app`. Without a handler the screen runs no apps."""
        self._app_handler = handler

    async def answer_app(self, request: dict[str, Any], state: str, detail: str | None = None) -> None:
        answer = {"type": "app.state", "request_id": request.get("request_id"), "app_id": request.get("app_id")}
        answer["state"] = state
        if detail is not None:
            answer["detail"] = detail
        await self._send(answer)

    async def send_to_controller(self, session_id: str, data: dict[str, Any]) -> None:
        """``data`` to one player's phone (it gets ``from_screen {data}``)."""
        await self._send({"type": "to_controller", "session_id": session_id, "data": data})

    async def broadcast(self, data: dict[str, Any]) -> None:
        """``data`` to every player's phone."""
        await self._send({"type": "broadcast", "data": data})

    @property
    def shown(self) -> ShownCode | None:
        return self.pairing.current()

    async def open_pairing(self, timeout_s: float = 5.0) -> ShownCode:
        """Show a fresh pairing code (5 minutes, once); with ``auto_renew`` a new one follows each use or expiry."""
        self.pairing_mode = True
        shown = self.pairing.new_code()
        await self._open_window(timeout_s)
        self._tell_code(shown)
        return shown

    async def close_pairing(self) -> None:
        self.pairing_mode = False
        self.pairing.clear()
        self._tell_code(None)
        await self._send({"type": "pairing.close"})

    async def kick(self, session_id: str, *, forget: bool = False) -> None:
        """End a controller's session; ``forget`` also drops its pairing credential (it needs a code again)."""
        credential = self.controllers.get(session_id, {}).get("credential_id")
        if forget and credential:
            self.pairing.credentials.remove(credential)
        await self._send({"type": "kick", "session_id": session_id, "forget": forget})

    async def set_max_players(self, value: int) -> None:
        self.max_players = value
        await self._send({"type": "config", "max_players": value})

    # -- the connection -------------------------------------------------------------------------------------

    async def _send(self, doc: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            raise DeviceError("the screen is not connected to the hub")
        await ws.send(orjson.dumps(doc).decode())

    async def _open_window(self, timeout_s: float) -> None:
        shown = self.pairing.current()
        if shown is None:
            return
        self._window_opened.clear()
        await self._send({"type": "pairing.open", "expires_in_s": max(1.0, shown.expires_at - time.time())})
        try:
            await asyncio.wait_for(self._window_opened.wait(), timeout_s)
        except TimeoutError:
            raise DeviceError("the hub did not open pairing in time") from None

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        delay = self.reconnect_min_s
        auth = base64.b64encode(f"{self.device_id}:{self._secret}".encode()).decode()
        while True:
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Basic {auth}"},
                    ssl=self.ssl,
                    open_timeout=10,
                    ping_interval=None,
                    compression=None,
                    proxy=None,
                ) as ws:
                    self._ws = ws
                    # batch: the hub sends the input frames waiting for this screen as one `inputs` message
                    hello: dict[str, Any] = {"type": "hello", "discriminator": self.discriminator, "batch": True}
                    if self.max_players is not None:
                        hello["max_players"] = self.max_players
                    await ws.send(orjson.dumps(hello).decode())
                    try:
                        async for raw in ws:
                            delay = self.reconnect_min_s
                            await self._handle(orjson.loads(raw))
                    finally:
                        if self._pinger is not None:
                            self._pinger.cancel()
                    code, reason = ws.close_code, ws.close_reason
                    if code in (4401, 4403):
                        log.warning("%s: the hub refused the screen connection: %s", self.device_id, reason)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("%s: session connection failed: %s", self.device_id, type(exc).__name__)
            finally:
                self._ws = None
                self._connected.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(self.reconnect_max_s, delay * 2)

    async def _keepalive(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self._keepalive_s)
            with contextlib.suppress(Exception):
                await ws.send(orjson.dumps({"type": "ping", "t": time.time() * 1000}).decode())

    async def _handle(self, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind == "inputs":  # first: the most frequent by far (the frames waiting at the hub, each a whole
            for frame in doc.get("frames", ()):  # `input` message, at most one per player)
                self._input(frame)
        elif kind == "input":
            self._input(doc)
        elif kind == "remote":
            for on_remote in self._remote_handlers:
                await _call(on_remote, doc)
        elif kind == "text":
            for on_text in self._text_handlers:
                await _call(on_text, doc)
        elif kind == "app":
            await self._app(doc)
        elif kind == "from_controller":
            for on_message in self._controller_message_handlers:
                await _call(on_message, doc)
        elif kind == "welcome":
            self.connects += 1
            self._keepalive_s = float(doc.get("keepalive_s") or 5.0)
            if self._pinger is not None:
                self._pinger.cancel()
            self._pinger = asyncio.get_running_loop().create_task(self._keepalive(self._ws))
            self.controllers = {c["session_id"]: c for c in doc.get("controllers", [])}
            self._connected.set()
            if self.pairing_mode:  # a code shown before the drop is offered again, or a fresh one
                if self.pairing.current() is None:
                    self._tell_code(self.pairing.new_code())
                self._window_opened.clear()
                shown = self.pairing.current()
                if shown is not None:
                    await self._send({"type": "pairing.open", "expires_in_s": max(1.0, shown.expires_at - time.time())})
        elif kind == "pairing.opened":
            self.window_id = doc.get("window_id")
            self._window_opened.set()
        elif kind == "pairing.closed":
            await self._pairing_closed(str(doc.get("reason", "")))
        elif kind == "pair.request":
            await self._answer(doc)
        elif kind == "pair.confirm":
            await self._verify(doc)
        elif kind == "pair.cancel":
            self.pairing.abandon(str(doc.get("attempt", "")))
            self._pending_users.pop(str(doc.get("attempt", "")), None)
        elif kind == "credential.revoked":
            self.pairing.credentials.remove(str(doc.get("credential_id", "")))
        elif isinstance(kind, str) and kind.startswith("controller."):
            session_id = str(doc.get("session_id", ""))
            if kind == "controller.left":
                self.controllers.pop(session_id, None)
                self.session_keys.pop(session_id, None)
            else:
                key = self._fresh_keys.pop(str(doc.get("credential_id")), None) if kind == "controller.joined" else None
                if key is not None:
                    self.session_keys[session_id] = key
                self.controllers[session_id] = {k: v for k, v in doc.items() if k != "type"}
            for handler in self._controller_handlers:
                await _call(handler, kind, doc)
        elif kind == "pong" and isinstance(doc.get("t"), int | float):
            self.rtt_ms = time.time() * 1000 - float(doc["t"])
        elif kind == "error":
            log.warning("%s: the hub refused %s: %s", self.device_id, doc.get("for"), doc.get("detail"))

    def _input(self, frame: dict[str, Any]) -> None:
        for on_input in self._input_handlers:
            try:
                on_input(frame)
            except Exception:
                log.exception("%s: input handler failed", self.device_id)

    async def _app(self, doc: dict[str, Any]) -> None:
        handler = self._app_handler
        if handler is None:
            await self.answer_app(doc, "not_installed", "this screen runs no apps")
            return
        try:
            answer = handler(doc)
            if asyncio.iscoroutine(answer):
                answer = await answer
        except Exception as exc:
            log.exception("%s: app handler failed", self.device_id)
            await self.answer_app(doc, "stopped", f"the screen failed: {type(exc).__name__}")
            return
        if isinstance(answer, dict):
            await self.answer_app(doc, str(answer.get("state", "")), answer.get("detail"))

    async def _pairing_closed(self, reason: str) -> None:
        self.window_id = None
        if reason in ("replaced",):
            return
        if self.pairing_mode and self.auto_renew and reason in ("used", "burnt", "expired"):
            self._tell_code(self.pairing.new_code())
            await self._open_window_quietly()
        elif reason != "closed_by_screen":
            self.pairing.clear()
            self._tell_code(None)

    async def _open_window_quietly(self) -> None:
        shown = self.pairing.current()
        if shown is not None:
            await self._send({"type": "pairing.open", "expires_in_s": max(1.0, shown.expires_at - time.time())})

    async def _answer(self, doc: dict[str, Any]) -> None:
        attempt = str(doc.get("attempt", ""))
        try:
            msg_b, confirm_b = self.pairing.answer(
                attempt,
                unb64(str(doc.get("msg_a", ""))),
                credential_id=doc.get("credential_id") or None,
                new_credential_id=doc.get("new_credential_id") or None,
            )
        except PairingError as exc:
            await self._send({"type": "pair.answer", "attempt": attempt, "error": exc.reason})
            return
        self._pending_users[attempt] = {"user": doc.get("user"), "controller_name": doc.get("controller_name")}
        await self._send({"type": "pair.answer", "attempt": attempt, "msg_b": b64(msg_b), "confirm_b": b64(confirm_b)})

    async def _verify(self, doc: dict[str, Any]) -> None:
        attempt = str(doc.get("attempt", ""))
        who = self._pending_users.pop(attempt, {})
        try:
            paired = self.pairing.verify(attempt, unb64(str(doc.get("confirm_a", ""))), who)
        except PairingError:
            await self._send({"type": "pair.verdict", "attempt": attempt, "ok": False})
            return
        if paired.credential_id:
            self._fresh_keys[paired.credential_id] = paired.session_key
        await self._send({"type": "pair.verdict", "attempt": attempt, "ok": True})

    def _tell_code(self, shown: ShownCode | None) -> None:
        for handler in self._code_handlers:
            try:
                result = handler(shown)
                if asyncio.iscoroutine(result):
                    asyncio.get_running_loop().create_task(result)
            except Exception:
                log.exception("%s: code handler failed", self.device_id)


async def _call(handler: Callable[..., Any], *args: Any) -> None:
    try:
        result = handler(*args)
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        log.exception("screen handler failed")


__all__ = ["ScreenLink", "new_discriminator", "session_url"]
