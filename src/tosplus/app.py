"""``create_hub(settings)``: wires the whole hub. Nothing is created at import time.

Start order: database (migrations) → registry and the other services → broker (embedded, or the external one
with its accounts) → the hub's MQTT session → ingest loop → HTTP API and CoAP → maintenance. Stop is the
reverse, and the ingest queue is drained before the database closes, so nothing received is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.catalog import load_catalog
from tosplus.config import Settings
from tosplus.core import dead_letters
from tosplus.core.access import BrokerAccounts
from tosplus.core.bus import Bus
from tosplus.core.commands import Commands
from tosplus.core.ids import now_ms
from tosplus.core.ingest import Ingest
from tosplus.core.presence import Presence
from tosplus.core.registry import Registry
from tosplus.core.telemetry import TelemetryStore
from tosplus.core.tokens import AdminToken, Tokens
from tosplus.core.twins import Twins
from tosplus.errors import ConfigError
from tosplus.services.homes.service import People, open_people
from tosplus.services.payments.activation import Activations
from tosplus.services.payments.counter import Counter
from tosplus.services.payments.idempotency import Idempotency
from tosplus.services.payments.intents import Intents
from tosplus.services.payments.refunds import Refunds
from tosplus.services.payments.risk import RiskControls
from tosplus.services.payments.service import Payments
from tosplus.services.payments.webhooks import Webhooks
from tosplus.services.payments.withdrawals import Withdrawals
from tosplus.services.scenes.service import Scenes
from tosplus.services.sessions.sessions import Sessions
from tosplus.storage.engine import open_database

if TYPE_CHECKING:
    from tosplus.services.voice.pipeline import Voice

log = logging.getLogger(__name__)

HUB_SECRET_FILE = "broker-hub-secret"


class _LatePublisher:
    """Services are built before the hub's MQTT session exists; they publish through this."""

    def __init__(self) -> None:
        self.target: Any = None

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if self.target is not None:
            self.target.publish(topic, payload, qos=qos, retain=retain)


class _LateAccounts:
    def __init__(self) -> None:
        self.target: BrokerAccounts | None = None

    def __getattr__(self, name: str) -> Any:
        if self.target is None:
            raise ConfigError("the broker is not started")
        return getattr(self.target, name)


@dataclass
class Hub:
    settings: Settings
    engine: AsyncEngine
    bus: Bus
    registry: Registry
    twins: Twins
    presence: Presence
    commands: Commands
    telemetry: TelemetryStore
    ingest: Ingest
    tokens: Tokens
    admin: AdminToken
    people: People
    publisher: _LatePublisher
    accounts: _LateAccounts
    started_at: int = field(default_factory=now_ms)
    mqtt_host: str = ""
    mqtt_port: int = 0
    http_port: int = 0
    coap_port: int = 0
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _embedded_broker: Any = None
    workers: Any = None  # tosplus.workers.WorkerPool when TOSPLUS_INGEST_WORKERS > 0
    scenes: Any = None  # tosplus.services.scenes.service.Scenes, built once the hub exists
    # Built once the hub exists (they need it), in create_hub:
    payments: Payments = field(init=False)
    counter: Counter = field(init=False)
    idempotency: Idempotency = field(init=False)
    webhooks: Webhooks = field(init=False)
    intents: Intents = field(init=False)
    activations: Activations = field(init=False)
    voice: Voice = field(init=False)  # type checking only: imported when the hub is built
    sessions: Sessions = field(init=False)

    def ingest_totals(self) -> tuple[int, int, int]:
        """(accepted, refused, batches) of the main process and every ingest worker."""
        accepted, refused, batches = self.ingest.accepted, self.ingest.refused, self.ingest.batches
        if self.workers is not None:
            a, r, b = self.workers.totals()
            accepted, refused, batches = accepted + a, refused + r, batches + b
        return accepted, refused, batches

    # ------------------------------------------------------------------ life cycle
    async def start(self, *, http: bool = True, coap: bool = True) -> Hub:
        try:
            await self._start_broker()
            self._tasks.append(asyncio.create_task(self.ingest.run(), name="ingest"))
            self._tasks.append(asyncio.create_task(self._maintenance(), name="maintenance"))
            self.webhooks.start()
            if http:
                await self._start_http()
            if coap and self.settings.coap_port:
                await self._start_coap()
            if self.settings.wyoming_uri:
                await self._start_wyoming(self.settings.wyoming_uri)
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_wyoming(self, uri: str) -> None:
        """Serve speech and intents over the Wyoming protocol (services/voice/wyoming_server.py)."""
        from tosplus.services.voice.wyoming_server import Wyoming

        settings = self.settings
        wyoming = await Wyoming.open(self, settings.wyoming_api_key, settings.wyoming_home)
        self._tasks.append(asyncio.create_task(wyoming.serve(uri), name="wyoming"))

    async def stop(self) -> None:
        await self._settle_broker()
        with contextlib.suppress(Exception):
            await self.counter.quick.close()  # payments accepted are answered before the database goes
        with contextlib.suppress(Exception):
            await self.webhooks.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.ingest.drain()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.presence.wait_online_hooks(), 5)
        with contextlib.suppress(Exception):
            await self.presence.flush()
        await self._stack.aclose()
        await self.engine.dispose()

    async def _settle_broker(self, limit_s: float = 5.0) -> None:
        """Before stopping, let what the embedded broker has already acknowledged reach ingest and be stored.

        The embedded broker lives in this process: what it holds for the hub is gone once the process ends.
        """
        broker = self._embedded_broker
        if broker is None or not any(t.get_name() == "ingest" and not t.done() for t in self._tasks):
            return
        deadline = asyncio.get_running_loop().time() + limit_s
        while asyncio.get_running_loop().time() < deadline:
            if broker.backlog == 0 and not self.ingest.queue:
                await asyncio.sleep(0.05)  # a last message may be on its way through the hub's socket
                if broker.backlog == 0 and not self.ingest.queue:
                    return
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Hub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_broker(self) -> None:
        from tosplus.gateway.accounts import EmbeddedAccounts, MosquittoAccounts
        from tosplus.gateway.hub_client import HubClient

        s = self.settings
        if s.embedded_broker:
            from tosplus.gateway.embedded import EmbeddedBroker

            hub_user, hub_password = "tosplus-hub", secrets.token_urlsafe(32)

            async def authenticate(username: str, password: str) -> bool:
                return self.registry.authenticate(username, password)

            broker = EmbeddedBroker(
                host=s.mqtt_host,
                port=s.mqtt_port,
                authenticate=authenticate,
                hub_username=hub_user,
                hub_password=hub_password,
                # The hub refuses payloads over max_payload_bytes itself, as dead letters the device is told
                # about; the broker only cuts off packets so large that reading them is a memory attack.
                max_payload_bytes=max(16 * s.max_payload_bytes, 1 << 20),
            )
            await self._stack.enter_async_context(broker)
            self._embedded_broker = broker
            self.accounts.target = EmbeddedAccounts(broker)
            host, port, mqtt5 = s.mqtt_host, broker.port, False
            # The broker lives in this process, so its acknowledgements to the hub add no durability (its
            # queues die with the process either way), while amqtt delivers QoS 1 to a subscriber one
            # message per PUBACK. The hub takes the devices' messages at QoS 0; a clean stop still waits
            # until everything the broker accepted is stored (_settle_broker).
            hub_qos = 0
        else:
            from tosplus.gateway.dynsec import DynsecAdmin

            hub_qos = 1
            url = urlsplit(s.broker_url)
            host, port, mqtt5 = url.hostname or "127.0.0.1", url.port or 1883, True
            admin_user = unquote(url.username or "")
            admin_password = unquote(url.password or "")
            if s.broker_accounts == "dynsec":
                admin = DynsecAdmin(host=host, port=port, username=admin_user, password=admin_password)
                await self._stack.enter_async_context(admin)
                hub_user, hub_password = "tosplus-hub", self._hub_broker_secret()
                await admin.ensure_hub_account(hub_user, hub_password)
                accounts = MosquittoAccounts(admin)
                self._stack.push_async_callback(accounts.close)
                # Bring the broker's accounts in line with the registry (a broker may have been reset).
                known = set(await admin.list_devices())
                missing = [d for d in self.registry.devices if d not in known]
                if missing:
                    log.warning("%d devices were missing on the broker; their secrets must be rotated", len(missing))
                self.accounts.target = accounts
            else:
                hub_user, hub_password = admin_user or None, admin_password or None  # type: ignore[assignment]
                from tosplus.core.access import NoAccounts

                self.accounts.target = NoAccounts()
                log.warning("broker accounts are managed outside the hub (TOSPLUS_BROKER_ACCOUNTS=none)")
        from tosplus.workers import TELEMETRY_GROUP, WorkerPool

        client = HubClient(
            host=host,
            port=port,
            username=hub_user,
            password=hub_password,
            client_id=s.hub_client_id,
            deliver=self.ingest.submit_threadsafe,
            mqtt5=mqtt5,
            on_session=self.ingest.begin_catch_up,
            shared_group=s.shared_group or None,
            telemetry_group=TELEMETRY_GROUP if s.ingest_workers else None,
            qos=hub_qos,
        )
        self.ingest.bind_loop(asyncio.get_running_loop())
        await client.start()
        self._stack.push_async_callback(client.stop)
        self.publisher.target = client
        self.mqtt_host, self.mqtt_port = host, port
        if s.ingest_workers:
            pool = WorkerPool(self, s.ingest_workers)
            # The broker deals each device's telemetry out round-robin: each member limits its share.
            self.ingest.limiter.rate = s.device_rate_per_s / pool.members
            self.ingest.limiter.burst = max(1, s.device_rate_burst // pool.members)
            await pool.start()
            self._stack.push_async_callback(pool.stop)
            self.workers = pool

    def _hub_broker_secret(self) -> str:
        path: Path = self.settings.data_dir / HUB_SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        path.write_text(secret + "\n")
        path.chmod(0o600)
        return secret

    async def _start_http(self) -> None:
        import uvicorn

        from tosplus.api.app import create_api
        from tosplus.api.ws_direct import direct_protocol

        s = self.settings
        sock = bind_tcp(s.http_host, s.http_port, "HTTP")
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_api(self),
            log_level="warning",
            lifespan="off",
            access_log=False,
            # uvicorn's websockets-sansio, with a direct path for 60 Hz input; session sockets uncompressed
            ws=direct_protocol(uncompressed=("/api/v1/sessions/",)),
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="http")

        async def shutdown() -> None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)

        self._stack.push_async_callback(shutdown)
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError("the HTTP server stopped at start")
            await asyncio.sleep(0.01)

    async def _start_coap(self) -> None:
        from tosplus.gateway.coap import start_coap

        server = await start_coap(self, self.settings.mqtt_host, self.settings.coap_port)
        self._stack.push_async_callback(server.shutdown)
        self.coap_port = self.settings.coap_port

    async def _maintenance(self) -> None:
        """Presence sweeps every second; expiry, dead-letter pruning and retention less often."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            try:
                self.presence.sweep()
                await self.presence.flush()
                await self.payments.ledger.expire_pending()
                await self.counter.sweep()
                await self.intents.sweep()
                if tick % 10 == 0:
                    await self.commands.expire_due()
                if tick % 60 == 0:
                    await dead_letters.prune(self.engine, self.settings.dead_letters_per_device)
                if tick % 3600 == 0:
                    await self.apply_retention()
                    await self.idempotency.prune()
            except Exception:
                log.exception("maintenance step failed; will try again")

    async def apply_retention(self) -> int:
        deleted = 0
        for product in self.registry.products.values():
            ids = [d.id for d in self.registry.devices.values() if d.product_id == product.id]
            before = now_ms() - product.model.retention_days * 86_400_000
            deleted += await self.telemetry.purge_before(ids, before)
        return deleted


def bind_tcp(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a keep-alive response written in two parts waits for the
    # client's delayed ACK (Nagle), 40 ms per request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == 98:
            raise ConfigError(f"{what} port {port} on {host} is already in use") from None
        raise ConfigError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def create_hub(settings: Settings) -> Hub:
    """Open storage and build every service; call ``start()`` (or ``async with``) to connect and serve."""
    engine = await open_database(settings.effective_database_url)
    try:
        publisher = _LatePublisher()
        accounts = _LateAccounts()
        core = await build_core(engine, settings, accounts, publisher)
        bus, registry, presence, twins, commands = core.bus, core.registry, core.presence, core.twins, core.commands
        await seed_catalog(registry)
        await presence.load()
        await commands.recover()

        async def on_online(device_ids: list[str]) -> None:
            for twin in await twins.get_many(device_ids):
                if twin.desired_version:
                    twins.send_desired(twin)
            await commands.deliver_queued(device_ids)

        presence.on_online(on_online)
        tokens = Tokens(engine)
        await tokens.load()
        admin = await tokens.ensure_admin(settings.admin_token, settings.data_dir)
        people = await open_people(engine, bus, registry, twins, tokens, publisher)
    except BaseException:
        await engine.dispose()
        raise
    hub = Hub(
        settings,
        engine,
        bus,
        registry,
        twins,
        presence,
        commands,
        core.store,
        core.ingest,
        tokens,
        admin,
        people,
        publisher,
        accounts,
    )
    hub.scenes = Scenes(hub)
    await hub.scenes.load()
    hub.payments = Payments(engine)
    await hub.payments.load()
    hub.counter = Counter(hub, hub.payments)
    hub.counter.risk = RiskControls(
        per_token_per_minute=settings.payments_per_device_per_minute,
        per_wallet_per_minute=settings.payments_per_wallet_per_minute,
    )
    await hub.counter.start()
    await Refunds(hub).recover()  # refunds a crash left half-way
    await Withdrawals(hub).recover()  # withdrawals a crash left half-way
    hub.intents = Intents(hub)
    await hub.intents.start()  # listens for device answers, settles intents a crash left in processing
    hub.idempotency = Idempotency(engine)
    hub.counter.quick.ttl_ms = hub.idempotency.ttl_ms
    hub.webhooks = Webhooks(engine, allow_insecure_urls=settings.webhooks_allow_insecure)
    from tosplus.services.voice.pipeline import build_voice  # numpy, ONNX, hassil: not for ingest workers

    hub.voice = build_voice(hub)  # engines load their models at first use
    if settings.wyoming_engines:
        from tosplus.services.voice.stt.wyoming_client import add_remote_engines

        await add_remote_engines(hub.voice, settings.wyoming_engines)  # recognisers elsewhere, over Wyoming
    hub.activations = Activations(hub)
    hub.activations.start()  # devices' activation codes and tokens over MQTT; token changes pushed to devices
    people.binding.on_unbind.append(hub.activations.on_unbind)  # an unbound device can no longer pay (and is told)
    hub.sessions = Sessions(hub, max_players=settings.session_max_players)
    await hub.sessions.load()  # pairing credentials, home settings; ends sessions of unbound screens
    hub._stack.push_async_callback(hub.sessions.close)
    return hub


@dataclass
class Core:
    """The spine's services, as the hub's main process and each ingest worker build them."""

    bus: Bus
    registry: Registry
    presence: Presence
    twins: Twins
    commands: Commands
    store: TelemetryStore
    ingest: Ingest


async def build_core(
    engine: AsyncEngine, settings: Settings, accounts: BrokerAccounts, publisher: Any, members: int = 1
) -> Core:
    """Registry (loaded), presence, twins, commands, telemetry store and ingest over one engine.

    ``members`` is how many processes share the telemetry stream: each enforces its share of the rate limit.
    """
    bus = Bus()
    registry = Registry(engine, bus, accounts)
    await registry.load()
    presence = Presence(engine, registry, bus)
    twins = Twins(engine, registry, bus, publisher)
    commands = Commands(engine, registry, bus, publisher, presence.is_online, settings.command_timeout_s)
    store = TelemetryStore(engine)
    ingest = Ingest(
        registry=registry,
        store=store,
        twins=twins,
        commands=commands,
        presence=presence,
        bus=bus,
        publisher=publisher,
        max_payload_bytes=settings.max_payload_bytes,
        rate_per_s=settings.device_rate_per_s / members,
        burst=max(1, settings.device_rate_burst // members),
        max_batch=settings.ingest_batch,
        catch_up_ms=int(settings.rate_limit_grace_s * 1000),
    )
    return Core(bus, registry, presence, twins, commands, store, ingest)


async def seed_catalog(registry: Registry) -> None:
    """Register the shipped products on first start (and products added to the catalog since); a shipped
    product whose thing model changed in a new release gets the new one."""
    for product_id, document in load_catalog().items():
        known = registry.products.get(product_id)
        if known is not None and known.builtin and dict(known.model.document) != document:
            await registry.replace_thing_model(product_id, document)
        if product_id not in registry.products:
            await registry.create_product(
                product_id=product_id,
                name=document["title"],
                manufacturer="TOS+ reference",
                thing_model=document,
                builtin=True,
            )
