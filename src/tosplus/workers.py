"""Ingest workers: more processes sharing the telemetry stream, for more than one core's worth of ingest.

With an external MQTT 5 broker, ``TOSPLUS_INGEST_WORKERS=N`` starts N worker processes. The hub's main
process and the workers all join one shared subscription (``$share/<group>/tos/v1/+/telemetry``), so the
broker spreads telemetry across them; everything else (reported state, events, command answers, status)
stays with the main process, which owns twins, commands and presence.

Each worker runs the same ingest code (decode, model check, batch write, acknowledge after commit) with its
own broker session (client id ``<hub client id>-w<i>``, persistent, so its share of a backlog survives a
worker restart) and its own database connections. It talks to the main process over a pipe:

- main → worker: ``("refresh", device_ids, product_ids)`` when the registry changed, ``("live", bool)`` when
  someone starts or stops watching live telemetry, ``("stop",)``;
- worker → main, twice a second: ``("seen", {device_id: last_seen_ms})`` for presence, ``("stats", accepted,
  refused, batches)``, and ``("events", [...])`` (dead letters always, telemetry while someone watches).

The per-device rate limit is split evenly between the members, since the broker deals a device's messages out
round-robin. A worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tosplus.core import bus as events

if TYPE_CHECKING:
    from tosplus.app import Hub
    from tosplus.config import Settings

log = logging.getLogger(__name__)
TELEMETRY_GROUP = "tosplus-ingest"
REPORT_EVERY_S = 0.5


# ---------------------------------------------------------------------------------------------- main side
@dataclass
class _Worker:
    index: int
    process: Any
    conn: multiprocessing.connection.Connection
    accepted: int = 0
    refused: int = 0
    batches: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its broker session and subscriptions are up


READY_TIMEOUT_S = 60.0  # a worker that cannot subscribe within this stops the hub's start


class WorkerPool:
    """Started by the hub's main process; supervises the workers and folds their reports into the hub."""

    def __init__(self, hub: Hub, count: int) -> None:
        self.hub = hub
        self.count = count
        self.workers: list[_Worker] = []
        self._pending_devices: set[str] = set()
        self._pending_products: set[str] = set()
        self._flush_scheduled = False
        self._live = False
        self._stopping = False
        self._unlisten: list[Any] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._ctx = multiprocessing.get_context("spawn")
        # Counters of workers that were replaced, so the hub's totals never go backwards.
        self.retired = (0, 0, 0)

    @property
    def members(self) -> int:
        return self.count + 1

    async def start(self) -> None:
        bus = self.hub.bus
        self._unlisten.append(bus.listen(events.DEVICE_LIFECYCLE, self._device_changed))
        self._unlisten.append(bus.listen(events.PRODUCT_LIFECYCLE, self._product_changed))
        for index in range(self.count):
            self.workers.append(self._spawn(index))
        self._supervisor = asyncio.create_task(self._supervise(), name="ingest-workers")
        # A started hub has its workers subscribed: until then the broker would deal the group's messages to
        # the main process alone (a worker's start-up — a new interpreter, imports, its database and broker
        # sessions — takes seconds on a busy machine).
        async with asyncio.timeout(READY_TIMEOUT_S):
            await asyncio.gather(*(worker.ready.wait() for worker in self.workers))

    def _spawn(self, index: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        settings_json = self.hub.settings.model_dump_json()
        process = self._ctx.Process(
            target=worker_main,
            args=(settings_json, index, self.members, child),
            name=f"tosplus-ingest-{index}",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(index, process, parent)
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_readable, worker)
        if self._live:
            self._send(worker, ("live", True))
        return worker

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(message)

    def _broadcast(self, message: tuple[Any, ...]) -> None:
        for worker in self.workers:
            self._send(worker, message)

    def _device_changed(self, event: events.Event) -> None:
        if event.device_id:
            self._pending_devices.add(event.device_id)
            self._schedule_flush()

    def _product_changed(self, event: events.Event) -> None:
        self._pending_products.add(str(event.data.get("product_id")))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Coalesce: a bulk creation of 10,000 devices becomes one message per worker.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush_scheduled = False
        devices, self._pending_devices = sorted(self._pending_devices), set()
        products, self._pending_products = sorted(self._pending_products), set()
        if devices or products:
            self._broadcast(("refresh", devices, products))

    def _on_readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "seen":
            for device_id, at in message[1].items():
                if device_id in self.hub.registry.devices:
                    self.hub.presence.seen(device_id, at)
            self.hub.presence.kick_online_hooks()
        elif kind == "ready":
            worker.ready.set()
        elif kind == "stats":
            worker.accepted, worker.refused, worker.batches = message[1], message[2], message[3]
        elif kind == "events":
            for event in message[1]:
                self.hub.bus.fire(event)

    def totals(self) -> tuple[int, int, int]:
        accepted, refused, batches = self.retired
        for worker in self.workers:
            accepted += worker.accepted
            refused += worker.refused
            batches += worker.batches
        return accepted, refused, batches

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            live = self.hub.bus.has_listeners(events.TELEMETRY)
            if live != self._live:
                self._live = live
                self._broadcast(("live", live))
            for position, worker in enumerate(self.workers):
                if not worker.process.is_alive() and not self._stopping:
                    log.error(
                        "ingest worker %d stopped (exit code %s); starting it again",
                        worker.index,
                        worker.process.exitcode,
                    )
                    self._forget(worker)
                    self.workers[position] = self._spawn(worker.index)

    def _forget(self, worker: _Worker) -> None:
        a, r, b = self.retired
        self.retired = (a + worker.accepted, r + worker.refused, b + worker.batches)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        worker.conn.close()

    async def stop(self) -> None:
        self._stopping = True
        for unlisten in self._unlisten:
            unlisten()
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._broadcast(("stop",))
        for worker in self.workers:
            await asyncio.to_thread(worker.process.join, 15)
            if worker.process.is_alive():
                worker.process.kill()
            # the last reports (drained batches) may still be in the pipe
            with contextlib.suppress(Exception):
                self._on_readable(worker)
            self._forget(worker)
        self.workers = []


# ---------------------------------------------------------------------------------------------- worker side
def worker_main(settings_json: str, index: int, members: int, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a worker process."""
    from tosplus.config import Settings

    logging.basicConfig(level=logging.WARNING, format=f"ingest-{index} %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(settings_json)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker(settings, index, members, conn))


async def _worker(settings: Settings, index: int, members: int, conn: multiprocessing.connection.Connection) -> None:
    from urllib.parse import unquote, urlsplit

    from tosplus.app import HUB_SECRET_FILE, _LatePublisher, build_core
    from tosplus.core.access import NoAccounts
    from tosplus.core.bus import Event
    from tosplus.gateway import topics
    from tosplus.gateway.hub_client import HubClient
    from tosplus.storage.engine import create_engine

    engine = create_engine(settings.effective_database_url, pool_size=3)
    publisher = _LatePublisher()
    core = await build_core(engine, settings, NoAccounts(), publisher, members)
    bus, registry, presence, ingest = core.bus, core.registry, core.presence, core.ingest
    outbox: list[Event] = []
    live = False

    def forward(event: Event) -> None:
        if event.type == events.DEAD_LETTER or live:
            outbox.append(event)

    bus.listen(events.DEAD_LETTER, forward)
    unlisten_telemetry = None

    url = urlsplit(settings.broker_url)
    if settings.broker_accounts == "dynsec":
        username: str | None = "tosplus-hub"
        password: str | None = (settings.data_dir / HUB_SECRET_FILE).read_text().strip()
    else:
        username, password = unquote(url.username or "") or None, unquote(url.password or "") or None
    client = HubClient(
        host=url.hostname or "127.0.0.1",
        port=url.port or 1883,
        username=username,
        password=password,
        client_id=f"{settings.hub_client_id}-w{index}",
        deliver=ingest.submit_threadsafe,
        mqtt5=True,
        on_session=ingest.begin_catch_up,
        filters=(topics.TELEMETRY_FILTER,),
        shared_group=settings.shared_group or None,
        telemetry_group=TELEMETRY_GROUP,
    )
    loop = asyncio.get_running_loop()
    ingest.bind_loop(loop)
    stop = asyncio.Event()
    refresh_tasks: set[asyncio.Task[None]] = set()

    def on_command() -> None:
        nonlocal live, unlisten_telemetry
        try:
            while conn.poll():
                message = conn.recv()
                if message[0] == "refresh":
                    task = loop.create_task(registry.refresh(device_ids=message[1], product_ids=message[2]))
                    refresh_tasks.add(task)
                    task.add_done_callback(refresh_tasks.discard)
                elif message[0] == "live":
                    live = bool(message[1])
                    if live and unlisten_telemetry is None:
                        unlisten_telemetry = bus.listen(events.TELEMETRY, forward)
                    elif not live and unlisten_telemetry is not None:
                        unlisten_telemetry()
                        unlisten_telemetry = None
                elif message[0] == "stop":
                    stop.set()
        except (EOFError, OSError):
            stop.set()  # the main process is gone

    loop.add_reader(conn.fileno(), on_command)
    publisher.target = client
    await client.start()
    runner = asyncio.create_task(ingest.run())
    with contextlib.suppress(OSError, ValueError):
        conn.send(("ready",))

    def report() -> None:
        nonlocal outbox
        seen = presence.take_seen()
        with contextlib.suppress(OSError, ValueError):
            if seen:
                conn.send(("seen", seen))
            if outbox:
                batch, outbox = outbox, []
                conn.send(("events", batch))
            conn.send(("stats", ingest.accepted, ingest.refused, ingest.batches))

    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_EVERY_S)
            report()
    finally:
        # Store and acknowledge what has arrived while the session is still up; whatever arrives after the
        # drain stays unacknowledged, and the broker hands it to the session again when it is back.
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await ingest.drain()
        report()
        await client.stop()
        loop.remove_reader(conn.fileno())
        await engine.dispose()
