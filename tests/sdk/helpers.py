"""Test-side pieces for SDK and simulator tests: a fake hub made of an MQTT client, and a TCP proxy in front
of Mosquitto that can be cut (abruptly, like a network failure) and restored on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson

from tests.support.services import free_port, require

PREFIX = "tos/v1/"


def new_device_id(kind: str = "dev") -> str:
    return f"test-{kind}-{uuid.uuid4().hex[:12]}"


def flatten(docs: list[Any]) -> list[dict[str, Any]]:
    """Telemetry payloads as points: batches (JSON arrays) unpacked."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        out.extend(doc if isinstance(doc, list) else [doc])
    return out


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def suffix(self) -> str:
        """The topic after ``tos/v1/{device_id}/``."""
        return self.topic[len(PREFIX) :].split("/", 1)[1]

    @property
    def device_id(self) -> str:
        return self.topic[len(PREFIX) :].split("/", 1)[0]

    def json(self) -> Any:
        return orjson.loads(self.payload)


class FakeHub:
    """Subscribes to everything of some devices on Mosquitto and records what arrives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[Received] = []
        self._changed = asyncio.Condition()

    async def _pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._changed:
                self.messages.append(Received(message.topic.value, payload, bool(message.retain)))
                self._changed.notify_all()

    async def watch(self, device_id: str) -> None:
        await self.client.subscribe(f"{PREFIX}{device_id}/#", qos=1)

    def matching(self, device_id: str, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.device_id == device_id and m.suffix == suffix]

    def points(self, device_id: str) -> list[dict[str, Any]]:
        """Every telemetry point of a device in arrival order, batches (JSON arrays) unpacked."""
        return flatten([m.json() for m in self.matching(device_id, "telemetry")])

    async def wait_for(self, predicate: Callable[[Received], bool], within: float = 5.0) -> Received:
        """The first message (already received or arriving ``within`` seconds) that fits ``predicate``."""
        async with asyncio.timeout(within), self._changed:
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.messages)
                await self._changed.wait()

    async def wait_until(self, check: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(check)

    async def publish(self, device_id: str, suffix: str, payload: Any, *, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await self.client.publish(f"{PREFIX}{device_id}/{suffix}", body, qos=1, retain=retain)

    async def command(self, device_id: str, name: str, params: Any = None) -> str:
        request_id = uuid.uuid4().hex[:10]
        await self.publish(device_id, f"commands/{request_id}", {"name": name, "params": params or {}})
        return request_id

    async def response(self, device_id: str, request_id: str, within: float = 5.0) -> Any:
        message = await self.wait_for(
            lambda m: m.device_id == device_id and m.suffix == f"commands/{request_id}/response", within
        )
        return message.json()

    async def clear_retained(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            for suffix in ("status", "twin/desired"):
                await self.client.publish(f"{PREFIX}{device_id}/{suffix}", b"", qos=1, retain=True)


@contextlib.asynccontextmanager
async def fake_hub(*device_ids: str) -> AsyncIterator[FakeHub]:
    """A fake hub watching ``device_ids``; clears their retained messages when done."""
    host, port = require("mosquitto")
    async with aiomqtt.Client(host, port, identifier=new_device_id("hub")) as client:
        hub = FakeHub(client)
        pump = asyncio.create_task(hub._pump())
        try:
            for device_id in device_ids:
                await hub.watch(device_id)
            yield hub
        finally:
            with contextlib.suppress(Exception):
                await hub.clear_retained(device_ids)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


class TcpProxy:
    """Forwards a free local port to Mosquitto; :meth:`cut` drops every connection abruptly and stops
    listening (the broker sees a network failure), :meth:`restore` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


@contextlib.asynccontextmanager
async def proxy_to_mosquitto() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(require("mosquitto"))
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.cut()
