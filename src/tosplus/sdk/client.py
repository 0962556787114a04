"""An asyncio MQTT client for one device speaking the ``tos/v1`` protocol.

Everything a device sends goes through an outbox and is delivered with QoS 1 once connected:

* telemetry and events: an ordered buffer (SQLite file in ``buffer_dir``, or memory), an entry removed only
  when the broker acknowledges it, so nothing is lost while offline, across reconnects, or (with
  ``buffer_dir``) across a restart of the process; a backlog of telemetry goes as batches (JSON arrays);
* reported state: coalesced (the latest value of each key wins) and sent first after every connect;
* command responses: kept in memory until delivered.

The connection is kept up by a background task that reconnects with exponential backoff and jitter. The
last will is ``offline`` (retained, QoS 1) on ``status``; ``online`` is published (retained) on every connect
and ``offline`` on a clean close.

This module imports nothing from the rest of tosplus, so it can be shipped alone to a device.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import random
import re
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import orjson

from tosplus.sdk.buffer import MemoryOutbox, Outbox, SqliteOutbox, outbox_path
from tosplus.sdk.errors import DeviceError
from tosplus.sdk.payments import DevicePayments, PaymentCredentials

log = logging.getLogger("tosplus.sdk")

PREFIX = "tos/v1/"

CommandHandler = Callable[[Any], Any]
"""``handler(params) -> result``; may be a coroutine function. Raising answers ``{"ok": false, ...}``."""
DesiredHandler = Callable[[dict[str, Any], dict[str, Any]], Any]
"""``handler(changed, full_desired) -> None | accepted``; may be a coroutine function."""
ErrorHandler = Callable[[dict[str, Any]], Any]
"""``handler({"topic": ..., "reason": ..., "at": ...})``; may be a coroutine function."""

_NAME = re.compile(r"^[^/+#\s]+$")
_RECENT_COMMANDS = 256


@dataclass(slots=True)
class _ReportFlag:
    client: DeviceClient
    reported: bool = False


_in_desired_handler: contextvars.ContextVar[_ReportFlag | None] = contextvars.ContextVar(
    "tosplus_sdk_in_desired_handler", default=None
)


@dataclass(slots=True)
class _DesiredSubscription:
    handler: DesiredHandler
    applied: dict[str, Any] = field(default_factory=dict)  # what this handler has been given so far


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they are done, cancelling again any that swallowed the cancellation
    (``asyncio.wait_for`` does when the awaited result arrives at the same time, before Python 3.12)."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    while pending:
        await asyncio.wait(pending, timeout=0.2)
        pending = [t for t in pending if not t.done()]
        for task in pending:
            task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


def _refused_credentials(exc: aiomqtt.MqttError) -> bool:
    """A CONNACK saying bad user name or password / not authorised (MQTT 3.1.1 codes 4, 5; MQTT 5 134, 135)."""
    rc = getattr(exc, "rc", None)
    try:
        code = int(getattr(rc, "value", rc))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return code in (4, 5, 134, 135)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class DeviceClient:
    """One device's connection to the hub.

    ::

        async with DeviceClient("dev-1", "s3cret", host="hub.local", buffer_dir=Path("outbox")) as dev:
            dev.on_command("reboot", reboot)
            dev.on_desired(apply_settings)
            await dev.send_telemetry({"temperature_c": 21.5})

    Entering the context starts connecting in the background and returns at once: the device works offline
    from the first moment. Use :meth:`wait_connected` where a connection is needed before going on.
    """

    def __init__(
        self,
        device_id: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        buffer_dir: Path | None = None,
        protocol: int = 3,
        keepalive: int = 30,
        tls_context: ssl.SSLContext | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_buffered: int = 100_000,
        max_inflight: int = 32,
        durable: bool = False,
        batch_max: int = 500,
        batch_max_bytes: int = 48_000,
    ) -> None:
        if not device_id or not _NAME.match(device_id):
            raise DeviceError(f"device id {device_id!r} cannot be part of an MQTT topic")
        if protocol not in (3, 4, 5):
            raise DeviceError("protocol must be 3 (MQTT 3.1.1) or 5 (MQTT 5)")
        self.device_id = device_id
        self._secret = secret
        self.host = host
        self.port = port
        self.buffer_dir = buffer_dir
        self._protocol = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
        self._keepalive = keepalive
        self._tls = tls_context
        self._backoff_min = reconnect_min_s
        self._backoff_max = reconnect_max_s
        self._max_buffered = max_buffered
        self._max_inflight = max(1, max_inflight)
        self._batch_max = max(1, batch_max)
        self._batch_max_bytes = batch_max_bytes
        self._durable = durable

        base = f"{PREFIX}{device_id}/"
        self._base = base
        self._t_telemetry = base + "telemetry"
        self._t_reported = base + "twin/reported"
        self._t_desired = base + "twin/desired"
        self._t_delta = base + "twin/delta"
        self._t_status = base + "status"
        self._t_errors = base + "errors"
        self._t_bind_code = base + "bind/code"
        self._binding_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self.payments = DevicePayments(
            device_id, lambda suffix, body: self._enqueue(base + suffix, body), self.on_command
        )
        """Payment on this device: activation codes, the token, pay codes, confirmation prompts (sdk/payments.py)."""

        self._outbox: Outbox | None = None
        self._pending_reported: dict[str, Any] = {}
        self._responses: deque[tuple[str, bytes]] = deque()
        self._reported: dict[str, Any] = {}

        self._desired: dict[str, Any] = {}
        self._desired_version: int | None = None
        self._desired_subs: list[_DesiredSubscription] = []
        self._commands: dict[str, CommandHandler] = {}
        self._error_handlers: list[ErrorHandler] = []
        self._recent_commands: OrderedDict[str, bytes | None] = OrderedDict()

        self._closing = asyncio.Event()
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._desired_dirty = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._desired_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connects = 0  # how many times a connection was established

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the outbox and start connecting in the background."""
        if self._run_task is not None:
            raise DeviceError("the client is already started")
        if self.buffer_dir is not None:
            self._outbox = SqliteOutbox(
                outbox_path(self.buffer_dir, self.device_id), self._max_buffered, durable=self._durable
            )
        else:
            self._outbox = MemoryOutbox(self._max_buffered)
        self._update_drained()
        self._closing.clear()
        self._desired_task = asyncio.create_task(self._desired_worker(), name=f"sdk-desired-{self.device_id}")
        self._run_task = asyncio.create_task(self._run(), name=f"sdk-conn-{self.device_id}")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (when connected), disconnect cleanly and stop. Undelivered messages stay in the
        outbox (on disk with ``buffer_dir``); call :meth:`flush` first to deliver them."""
        if self._run_task is None:
            return
        self._closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._run_task), timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            self._run_task.cancel()
            with contextlib.suppress(BaseException):
                await self._run_task
        await _cancel_all([t for t in (self._desired_task, *self._tasks) if t is not None])
        self._tasks.clear()
        self._run_task = None
        self._desired_task = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    # -- state -----------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def desired(self) -> dict[str, Any]:
        """The latest desired state received from the hub (a copy)."""
        return dict(self._desired)

    @property
    def desired_version(self) -> int | None:
        return self._desired_version

    @property
    def reported(self) -> dict[str, Any]:
        """Everything this client has reported since it started (a copy)."""
        return dict(self._reported)

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker (buffered telemetry and events, responses, state)."""
        return (
            (len(self._outbox) if self._outbox is not None else 0)
            + len(self._responses)
            + (1 if self._pending_reported else 0)
        )

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until connected; raises :class:`DeviceError` after ``timeout_s`` seconds."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise DeviceError(
                f"{self.device_id}: not connected to {self.host}:{self.port} after {timeout_s} s"
            ) from None

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything sent so far has been acknowledged by the broker (forever by default;
        raises :class:`DeviceError` after ``timeout_s`` seconds)."""
        if self._outbox is None:
            raise DeviceError("the client is not started")
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            raise DeviceError(
                f"{self.device_id}: {self.pending} messages still undelivered after {timeout_s} s"
            ) from None

    # -- handlers --------------------------------------------------------------------------------------------

    def on_command(self, name: str, handler: CommandHandler) -> CommandHandler:
        """Answer the command ``name``: ``handler(params)`` returns the result (JSON-serialisable)."""
        self._commands[name] = handler
        return handler

    def on_desired(self, handler: DesiredHandler) -> DesiredHandler:
        """Call ``handler(changed, full_desired)`` whenever desired properties change (only the changed keys).

        When it returns, the accepted values are reported: what it returned if that is a mapping, else all of
        ``changed``; nothing if it raised, and nothing when it called :meth:`report` itself. A handler
        registered after desired state arrived is called at once with all of it.
        """
        self._desired_subs.append(_DesiredSubscription(handler))
        self._desired_dirty.set()
        return handler

    def on_error(self, handler: ErrorHandler) -> ErrorHandler:
        """Call ``handler(doc)`` when the hub refuses a message (``errors`` topic)."""
        self._error_handlers.append(handler)
        return handler

    # -- sending ---------------------------------------------------------------------------------------------

    async def report(self, state: Mapping[str, Any]) -> None:
        """Report (partial) state; coalesced with what is not sent yet and delivered with QoS 1."""
        if not state:
            return
        flag = _in_desired_handler.get()
        if flag is not None and flag.client is self:
            flag.reported = True
        try:
            orjson.dumps(dict(state))
        except TypeError as exc:
            raise DeviceError(f"reported state is not JSON-serialisable: {exc}") from None
        self._reported.update(state)
        self._pending_reported.update(state)
        self._kick()

    async def send_telemetry(self, values: Mapping[str, Any], ts_ms: int | None = None) -> None:
        """Queue one telemetry point (``ts_ms`` defaults to now); written to the outbox first."""
        if not values:
            raise DeviceError("telemetry needs at least one value")
        ts = int(time.time() * 1000) if ts_ms is None else int(ts_ms)
        try:
            payload = orjson.dumps({"ts": ts, "values": dict(values)})
        except TypeError as exc:
            raise DeviceError(f"telemetry is not JSON-serialisable: {exc}") from None
        self._enqueue(self._t_telemetry, payload)

    async def send_event(self, name: str, data: Any = None) -> None:
        """Queue an event; delivered in order with telemetry through the outbox."""
        if not _NAME.match(name):
            raise DeviceError(f"event name {name!r} cannot be part of an MQTT topic")
        try:
            payload = orjson.dumps({} if data is None else data)
        except TypeError as exc:
            raise DeviceError(f"event data is not JSON-serialisable: {exc}") from None
        self._enqueue(f"{self._base}events/{name}", payload)

    async def request_binding_code(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Ask the hub for a binding code to show (as text and QR) so a person can add this device to a home.

        Returns ``{"code": "ABCD-EFGH", "expires_at": ms, "uri": "tosplus:bind:ABCDEFGH", ...}``; raises
        :class:`DeviceError` when the hub refuses (for one, the device belongs to a home already) or does not
        answer within ``timeout_s``.
        """
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._binding_waiters.append(waiter)
        self._enqueue(self._base + "bind/request", b"{}")
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise DeviceError(f"{self.device_id}: no binding code from the hub within {timeout_s} s") from None
        finally:
            if waiter in self._binding_waiters:
                self._binding_waiters.remove(waiter)

    async def request_payment_activation(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """A code (and ``uri``, ``qr_svg``) for a person to scan to enable payment on this device."""
        return await self.payments.request_activation(timeout_s)

    async def payment_token(self, timeout_s: float = 10.0) -> PaymentCredentials | None:
        """Fetch this device's payment token (kept in memory and kept up to date); ``None`` unless active."""
        return await self.payments.fetch_token(timeout_s)

    def pay_code(self) -> str:
        """The pay code to show now; :class:`~tosplus.sdk.payments.PaymentError` when payment is off."""
        return self.payments.pay_code()

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if self._outbox is None:
            raise DeviceError("the client is not started (use 'async with DeviceClient(...)')")
        self._outbox.append(topic, payload)
        self._kick()

    def _kick(self) -> None:
        self._drained.clear()
        self._wake.set()

    def _update_drained(self) -> None:
        if self.pending == 0:
            self._drained.set()
        else:
            self._drained.clear()

    # -- connection ------------------------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.device_id,
            password=self._secret,
            identifier=self.device_id,
            protocol=self._protocol,
            will=aiomqtt.Will(self._t_status, b"offline", qos=1, retain=True),
            clean_session=None if self._protocol == aiomqtt.ProtocolVersion.V5 else True,
            keepalive=self._keepalive,
            tls_context=self._tls,
            timeout=10,
            # Small MQTT packets go out at once: without this, a PUBACK followed by a command response waits
            # for the peer's delayed ACK (Nagle), ~40 ms per command.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        client.pending_calls_threshold = self._max_inflight + 16  # the outbox keeps this many in flight
        return client

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_min * 2.0 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            started = time.monotonic()
            try:
                client = self._make_client()
                async with client:
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                if _refused_credentials(exc):
                    log.warning(
                        "%s: %s:%d refuses the device id or secret (%s); retrying",
                        self.device_id,
                        self.host,
                        self.port,
                        exc,
                    )
                else:
                    log.log(
                        logging.INFO if attempt == 0 else logging.DEBUG,
                        "%s: connection to %s:%d lost or refused: %s",
                        self.device_id,
                        self.host,
                        self.port,
                        exc,
                    )
            except Exception:
                log.exception("%s: unexpected error in the connection", self.device_id)
            finally:
                self._connected.clear()
            if self._closing.is_set():
                break
            attempt = 0 if time.monotonic() - started > 60 else attempt + 1
            delay = self._backoff(attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(
            [
                (self._t_desired, 1),
                (self._t_delta, 1),
                (f"{self._base}commands/+", 1),
                (self._t_errors, 1),
                (self._t_bind_code, 1),
                (self._base + "pay/activate/code", 1),
                (self._base + "pay/token", 1),
            ]
        )
        await client.publish(self._t_status, b"online", qos=1, retain=True)
        self.connects += 1
        self._connected.set()
        self.payments.connected()
        log.info("%s: connected to %s:%d", self.device_id, self.host, self.port)
        receiver = asyncio.create_task(self._receiver(client))
        sender = asyncio.create_task(self._sender(client))
        closing = asyncio.create_task(self._closing.wait())
        try:
            done, _ = await asyncio.wait({receiver, sender, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._connected.clear()
            await _cancel_all((receiver, sender, closing))
        if closing in done:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(self._t_status, b"offline", qos=1, retain=True, timeout=2)
            return
        for task in (receiver, sender):
            if task in done and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
        raise aiomqtt.MqttError("connection ended")

    async def _sender(self, client: aiomqtt.Client) -> None:
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError  # a cancel swallowed by asyncio.wait_for (before Python 3.12)
            self._wake.clear()
            if not await self._send_some(client):
                self._update_drained()
                await self._wake.wait()

    async def _send_some(self, client: aiomqtt.Client) -> bool:
        """Send one batch of pending messages; ``False`` when there was nothing to send."""
        if self._pending_reported:
            patch, self._pending_reported = self._pending_reported, {}
            try:
                await client.publish(self._t_reported, orjson.dumps(patch), qos=1)
            except BaseException:
                self._pending_reported = patch | self._pending_reported
                raise
            return True
        if self._responses:
            topic, payload = self._responses[0]
            await client.publish(topic, payload, qos=1)
            self._responses.popleft()
            return True
        assert self._outbox is not None
        messages = self._next_messages()
        if not messages:
            return False
        # Published in order on one connection (tasks start in creation order); removed once acknowledged.
        results = await asyncio.gather(
            *(client.publish(topic, payload, qos=1) for topic, payload, _ in messages), return_exceptions=True
        )
        self._outbox.remove(i for (_, _, ids), r in zip(messages, results, strict=True) if r is None for i in ids)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return True

    def _next_messages(self) -> list[tuple[str, bytes, list[int]]]:
        """The oldest outbox entries as at most ``max_inflight`` messages ``(topic, payload, entry ids)``.

        Consecutive telemetry entries (a backlog) go as one batch (a JSON array, at most ``batch_max`` points
        and ``batch_max_bytes``), so a device coming back online does not flood the hub's per-device rate
        limit; a single point is sent as it is."""
        assert self._outbox is not None
        entries = self._outbox.peek(self._max_inflight * self._batch_max)
        messages: list[tuple[str, list[bytes], list[int]]] = []
        size = 0
        for entry in entries:
            last = messages[-1] if messages else None
            if (
                last is not None
                and entry.topic == self._t_telemetry
                and last[0] == self._t_telemetry
                and len(last[2]) < self._batch_max
                and size + len(entry.payload) + 1 <= self._batch_max_bytes
            ):
                last[1].append(entry.payload)
                last[2].append(entry.id)
                size += len(entry.payload) + 1
                continue
            if len(messages) == self._max_inflight:
                break
            messages.append((entry.topic, [entry.payload], [entry.id]))
            size = len(entry.payload) + 2
        return [
            (topic, parts[0] if len(parts) == 1 else b"[" + b",".join(parts) + b"]", ids)
            for topic, parts, ids in messages
        ]

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self._dispatch(message.topic.value, message.payload)
            except Exception:
                log.exception("%s: could not handle a message on %s", self.device_id, message.topic.value)

    # -- incoming --------------------------------------------------------------------------------------------

    def _dispatch(self, topic: str, raw: Any) -> None:
        if not topic.startswith(self._base):
            return
        rest = topic[len(self._base) :]
        payload = raw if isinstance(raw, bytes | bytearray) else str(raw if raw is not None else "").encode()
        if rest in ("twin/desired", "twin/delta"):
            if payload:
                self._on_twin(payload, full=rest == "twin/desired")
        elif rest == "errors":
            self._on_hub_error(payload)
        elif rest == "bind/code":
            self._answer_binding_waiters(payload)
        elif rest.startswith("pay/"):
            self.payments.receive(rest, payload)
        elif rest.startswith("commands/"):
            request_id = rest[len("commands/") :]
            if request_id and "/" not in request_id:
                self._on_command(request_id, payload)

    def _on_twin(self, payload: bytes | bytearray, *, full: bool) -> None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("%s: desired state is not JSON, ignored", self.device_id)
            return
        state = doc.get("state") if isinstance(doc, dict) else None
        if not isinstance(state, dict):
            log.warning("%s: desired state without a 'state' object, ignored", self.device_id)
            return
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            version = None
        if version is not None and self._desired_version is not None and version < self._desired_version:
            log.debug("%s: ignoring desired version %d older than %d", self.device_id, version, self._desired_version)
            return
        if full:
            self._desired = {k: v for k, v in state.items() if v is not None}
        else:
            for key, value in state.items():
                if value is None:
                    self._desired.pop(key, None)
                else:
                    self._desired[key] = value
        if version is not None:
            self._desired_version = version
        self._desired_dirty.set()

    async def _desired_worker(self) -> None:
        while True:
            await self._desired_dirty.wait()
            self._desired_dirty.clear()
            await self._dispatch_desired()

    async def _dispatch_desired(self) -> None:
        full = dict(self._desired)
        accepted: dict[str, Any] = {}
        for sub in list(self._desired_subs):
            for key in [k for k in sub.applied if k not in full]:
                del sub.applied[key]
            changed = {k: v for k, v in full.items() if k not in sub.applied or sub.applied[k] != v}
            if not changed:
                continue
            sub.applied.update(changed)
            flag = _ReportFlag(self)
            token = _in_desired_handler.set(flag)
            try:
                result = await _maybe_await(sub.handler(dict(changed), dict(full)))
            except Exception:
                log.exception("%s: desired-state handler failed for %s", self.device_id, sorted(changed))
                continue
            finally:
                _in_desired_handler.reset(token)
            if not flag.reported:
                accepted.update(result if isinstance(result, Mapping) else changed)
        if accepted:
            await self.report(accepted)

    def _on_command(self, request_id: str, payload: bytes | bytearray) -> None:
        if request_id in self._recent_commands:  # a QoS 1 redelivery: never run a command twice
            previous = self._recent_commands[request_id]
            if previous is not None:
                self._respond(request_id, previous)
            return
        self._recent_commands[request_id] = None
        while len(self._recent_commands) > _RECENT_COMMANDS:
            self._recent_commands.popitem(last=False)
        task = asyncio.create_task(self._run_command(request_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_command(self, request_id: str, payload: bytes | bytearray) -> None:
        response: dict[str, Any]
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(name, str):
            response = {"ok": False, "error": 'invalid command: expected {"name": ..., "params": {...}}'}
        elif (handler := self._commands.get(name)) is None:
            response = {"ok": False, "error": f"unknown command '{name}'"}
        else:
            try:
                result = await _maybe_await(handler(doc.get("params") or {}))
                response = {"ok": True, "result": result}
            except Exception as exc:
                log.info("%s: command %s failed: %s", self.device_id, name, exc)
                response = {"ok": False, "error": str(exc) or type(exc).__name__}
        try:
            body = orjson.dumps(response)
        except TypeError as exc:
            body = orjson.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}"})
        if request_id in self._recent_commands:
            self._recent_commands[request_id] = body
        self._respond(request_id, body)

    def _respond(self, request_id: str, body: bytes) -> None:
        self._responses.append((f"{self._base}commands/{request_id}/response", body))
        self._kick()

    def _answer_binding_waiters(self, payload: bytes | bytearray, error: str | None = None) -> None:
        waiters, self._binding_waiters = self._binding_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is not None:
                waiter.set_exception(DeviceError(f"{self.device_id}: no binding code: {error}"))
                continue
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                waiter.set_exception(DeviceError(f"{self.device_id}: the hub sent an unreadable binding code"))
            else:
                waiter.set_result(doc)

    def _on_hub_error(self, payload: bytes | bytearray) -> None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = {"reason": payload.decode(errors="replace")}
        if not isinstance(doc, dict):
            doc = {"reason": doc}
        if str(doc.get("topic", "")).endswith("/bind/request"):
            self._answer_binding_waiters(b"", str(doc.get("reason")))
        self.payments.refused(doc)
        log.warning("%s: the hub refused a message on %s: %s", self.device_id, doc.get("topic"), doc.get("reason"))
        for handler in list(self._error_handlers):
            task = asyncio.create_task(self._call_error_handler(handler, doc))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call_error_handler(self, handler: ErrorHandler, doc: dict[str, Any]) -> None:
        try:
            await _maybe_await(handler(dict(doc)))
        except Exception:
            log.exception("%s: error handler failed", self.device_id)
