"""The ingest path: every message a device sends, whichever way it came, passes through here.

Messages are queued as they arrive and handled in batches: one decode and model check per message, then one
database transaction per batch for telemetry, events, reported state and dead letters. A message is
acknowledged to the broker (QoS 1 PUBACK) only after that transaction has committed, so a message the broker
handed to the hub is never lost by the hub: if the hub dies first, the broker delivers it again.

Batches form by themselves: the loop takes whatever has queued while the previous batch was being written,
so a lone command response is handled at once and a flood is written a few thousand rows at a time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tosplus.core import bus as events
from tosplus.core import dead_letters
from tosplus.core.bus import Bus, Event
from tosplus.core.commands import Commands
from tosplus.core.ids import now_ms
from tosplus.core.presence import Presence
from tosplus.core.publisher import Publisher
from tosplus.core.registry import Registry
from tosplus.core.telemetry import Row, TelemetryStore, encode_value
from tosplus.core.twins import Twins
from tosplus.errors import InvalidInput, NotFound, RateLimited, TooLarge, TosError
from tosplus.gateway import codec, topics
from tosplus.gateway.topics import Kind
from tosplus.storage import tables as t

log = logging.getLogger(__name__)

Ack = Callable[[], None]


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    ack: Ack | None = None
    outcome: asyncio.Future[TosError | None] | None = None  # set for callers that answer the device (HTTP, CoAP)


@dataclass(slots=True)
class RateLimiter:
    """A token bucket per device: ``rate`` messages/s sustained, ``burst`` at once."""

    rate: float
    burst: int
    buckets: dict[str, list[float]] = field(default_factory=dict)

    def allow(self, device_id: str, now_ms_: int) -> bool:
        bucket = self.buckets.get(device_id)
        now = now_ms_ / 1000.0
        if bucket is None:
            self.buckets[device_id] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False


@dataclass(slots=True)
class Batch:
    """What one batch of messages turns into, before it is written."""

    telemetry: list[Row] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    reported: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    responses: list[tuple[str, str, Any, Inbound]] = field(default_factory=list)
    live_telemetry: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    binding_requests: list[str] = field(default_factory=list)
    payment_requests: list[tuple[str, str]] = field(default_factory=list)  # (device id, "activate" | "token")
    verdicts: list[tuple[Inbound, TosError | None]] = field(default_factory=list)


class Ingest:
    def __init__(
        self,
        *,
        registry: Registry,
        store: TelemetryStore,
        twins: Twins,
        commands: Commands,
        presence: Presence,
        bus: Bus,
        publisher: Publisher,
        max_payload_bytes: int,
        rate_per_s: float,
        burst: int,
        max_batch: int,
        catch_up_ms: int = 5000,
    ) -> None:
        self.registry = registry
        self.store = store
        self.twins = twins
        self.commands = commands
        self.presence = presence
        self.bus = bus
        self.publisher = publisher
        self.max_payload = max_payload_bytes
        self.limiter = RateLimiter(rate_per_s, burst)
        self.max_batch = max_batch
        self.catch_up_ms = catch_up_ms
        self.queue: collections.deque[Inbound] = collections.deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._errors_sent: dict[str, int] = {}
        self.accepted = 0
        # After the hub's broker session (re)starts, the broker hands over what devices sent while the hub was
        # away, all at once. That backlog is not a flood by the devices, so the rate limit waits until it has
        # drained (and at least catch_up_ms have passed).
        self._catch_up_since: int | None = None
        self.refused = 0
        self.batches = 0

    # ------------------------------------------------------------------ entry points
    def begin_catch_up(self) -> None:
        """The broker session (re)started: a backlog may follow (callable from any thread)."""
        self._catch_up_since = now_ms()

    def _catching_up(self, now: int) -> bool:
        since = self._catch_up_since
        if since is None:
            return False
        if now - since >= self.catch_up_ms and len(self.queue) == 0:
            self._catch_up_since = None
            return False
        return True

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Messages from other threads wake this loop (set before the broker session starts)."""
        self._loop = loop

    def submit(self, message: Inbound) -> None:
        """Queue a message (from the event loop's thread)."""
        self.queue.append(message)
        self._wake.set()

    def submit_threadsafe(self, topic: str, payload: bytes, ack: Ack | None) -> None:
        """Queue a message from the MQTT client's network thread."""
        self.queue.append(Inbound(topic, payload, ack))
        loop = self._loop
        if loop is not None and not self._wake.is_set():
            loop.call_soon_threadsafe(self._wake.set)

    async def handle(self, topic: str, payload: bytes) -> TosError | None:
        """Queue a message and wait until it is stored or refused; returns why it was refused, or None."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[TosError | None] = loop.create_future()
        self.submit(Inbound(topic, payload, None, outcome))
        return await outcome

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self._wake.clear()
                if not self.queue:
                    await self._wake.wait()
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.max_batch))]
            await self._process_with_retry(batch)

    async def drain(self) -> None:
        """Handle everything queued so far (used at shutdown and by tests)."""
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.max_batch))]
            await self._process_with_retry(batch)

    async def _process_with_retry(self, batch: list[Inbound]) -> None:
        delay = 0.1
        while True:
            try:
                await self.process(batch)
                return
            except asyncio.CancelledError:
                # Not acknowledged: the broker keeps these for the next session. Put them back for drain().
                self.queue.extendleft(reversed(batch))
                raise
            except Exception:
                # The database is unreachable or refused the batch. Nothing was acknowledged, nothing is
                # dropped: try again, backing off, until it is written.
                log.exception("could not store a batch of %d messages; retrying in %.1fs", len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def process(self, messages: list[Inbound]) -> None:
        now = now_ms()
        batch = Batch()
        for message in messages:
            verdict = self._classify(message, now, batch)
            batch.verdicts.append((message, verdict))
        changed_twins = []
        if batch.telemetry or batch.events or batch.reported or batch.dead:
            async with self.store.engine.begin() as conn:
                await self.store.write(conn, batch.telemetry)
                if batch.events:
                    await conn.execute(t.events.insert(), batch.events)
                changed_twins = await self.twins.merge_reported(conn, batch.reported) if batch.reported else []
                await dead_letters.write(conn, batch.dead)
        self.batches += 1
        self.twins.commit_reported(changed_twins)
        if batch.responses:
            # Concurrently, so the commands' state changes share one group commit.
            problems = await asyncio.gather(
                *(self.commands.on_response(device_id, rid, doc) for device_id, rid, doc, _ in batch.responses)
            )
            for (device_id, _, _, message), problem in zip(batch.responses, problems, strict=True):
                if problem:
                    await self._dead_letter_now(device_id, message, problem, now)
                    self._replace_verdict(batch, message, InvalidInput(problem))
        for message, verdict in batch.verdicts:
            if message.ack is not None:
                message.ack()
            if message.outcome is not None and not message.outcome.done():
                message.outcome.set_result(verdict)
            if verdict is None:
                self.accepted += 1
            else:
                self.refused += 1
        self._announce(batch, now)
        self.presence.kick_online_hooks()

    @staticmethod
    def _replace_verdict(batch: Batch, message: Inbound, verdict: TosError) -> None:
        for index, (m, _) in enumerate(batch.verdicts):
            if m is message:
                batch.verdicts[index] = (m, verdict)

    # ------------------------------------------------------------------ one message
    def _classify(self, message: Inbound, now: int, batch: Batch) -> TosError | None:
        """Turn one message into rows of ``batch``; returns why it was refused, or None."""
        topic, payload = message.topic, message.payload
        route = topics.parse(topic)
        device_id = route.device_id if route else topics.device_of(topic)
        device = self.registry.devices.get(device_id) if device_id else None
        if route is None or device is None:
            reason = "unknown device" if device is None else "topic is not part of the tos/v1 device protocol"
            batch.dead.append(dead_letters.row(device.id if device else None, topic, reason, payload, now))
            return NotFound(reason)
        try:
            if not device.enabled:
                raise InvalidInput("device is disabled")
            if route.kind is not Kind.STATUS:
                self.presence.seen(device.id, now)
            if len(payload) > self.max_payload:
                raise TooLarge(f"payload of {len(payload)} bytes is over the limit of {self.max_payload}")
            # Status and command answers are few and must never be lost to a flood of telemetry.
            limited = route.kind is not Kind.STATUS and route.kind is not Kind.COMMAND_RESPONSE
            if limited and not self.limiter.allow(device.id, now) and not self._catching_up(now):
                raise RateLimited("message rate over the device's limit")
            model = self.registry.products[device.product_id].model
            kind = route.kind
            if kind is Kind.TELEMETRY:
                points = codec.telemetry_points(codec.decode_json(payload), now)
                for index, (_, values) in enumerate(points):
                    problem = model.check_values(values)
                    if problem:
                        raise InvalidInput(problem if len(points) == 1 else f"[{index}] {problem}")
                for ts, values in points:
                    for key, value in values.items():
                        num, txt = encode_value(value)
                        batch.telemetry.append((device.id, key, ts, num, txt))
                    if self.bus.has_listeners(events.TELEMETRY):
                        batch.live_telemetry.append((device.id, ts, values))
            elif kind is Kind.REPORTED:
                doc = codec.object_payload(codec.decode_json(payload), "reported state")
                problem = model.check_values({k: v for k, v in doc.items() if v is not None})
                if problem:
                    raise InvalidInput(problem)
                batch.reported.setdefault(device.id, []).append((now, doc))
            elif kind is Kind.EVENT:
                data = codec.decode_json(payload) if payload else None
                problem = model.check_event(route.name, data)
                if problem:
                    raise InvalidInput(problem)
                batch.events.append({"device_id": device.id, "name": route.name, "ts": now, "data": data})
            elif kind is Kind.COMMAND_RESPONSE:
                batch.responses.append((device.id, route.name, codec.decode_json(payload), message))
            elif kind is Kind.BIND_REQUEST:
                batch.binding_requests.append(device.id)
            elif kind is Kind.PAY_ACTIVATE_REQUEST or kind is Kind.PAY_TOKEN_REQUEST:
                batch.payment_requests.append((device.id, "activate" if kind is Kind.PAY_ACTIVATE_REQUEST else "token"))
            elif kind is Kind.STATUS:
                if not payload:
                    return None  # clearing the retained status message: nothing to record
                text = payload.decode("utf-8", "replace").strip().strip('"')
                if text not in ("online", "offline"):
                    raise InvalidInput("status must be 'online' or 'offline'")
                self.presence.status(device.id, text == "online", now)
            return None
        except TosError as exc:
            batch.dead.append(dead_letters.row(device.id, topic, exc.detail, payload, now))
            return exc

    async def _dead_letter_now(self, device_id: str, message: Inbound, reason: str, now: int) -> None:
        async with self.store.engine.begin() as conn:
            await dead_letters.write(conn, [dead_letters.row(device_id, message.topic, reason, message.payload, now)])
        self._tell_device(device_id, message.topic, reason, now)
        self.bus.fire(Event(events.DEAD_LETTER, device_id, {"topic": message.topic, "reason": reason}, now))

    # ------------------------------------------------------------------ after commit
    def _announce(self, batch: Batch, now: int) -> None:
        for device_id, ts, values in batch.live_telemetry:
            self.bus.fire(Event(events.TELEMETRY, device_id, {"ts": ts, "values": values}, now))
        for row in batch.events:
            self.bus.fire(Event(events.DEVICE_EVENT, row["device_id"], {"name": row["name"], "data": row["data"]}, now))
        for device_id in batch.binding_requests:
            self.bus.fire(Event(events.BINDING_REQUESTED, device_id, {}, now))
        for device_id, what in batch.payment_requests:
            self.bus.fire(Event(events.PAYMENT_REQUESTED, device_id, {"request": what}, now))
        for row in batch.dead:
            device_id = row["device_id"]
            self.bus.fire(Event(events.DEAD_LETTER, device_id, {"topic": row["topic"], "reason": row["reason"]}, now))
            if device_id is not None:
                self._tell_device(device_id, row["topic"], row["reason"], now)

    def _tell_device(self, device_id: str, topic: str, reason: str, now: int) -> None:
        """Explain a refusal on the device's errors topic, at most once a second per device (floods)."""
        if now - self._errors_sent.get(device_id, 0) < 1000:
            return
        self._errors_sent[device_id] = now
        self.publisher.publish(
            topics.errors(device_id), orjson.dumps({"topic": topic, "reason": reason, "at": now}), qos=0
        )
