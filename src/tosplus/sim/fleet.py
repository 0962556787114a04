"""A fleet of N simulated devices of one product: bulk-created on the hub, connected with bounded
concurrency, then each sending telemetry every ``period_s`` seconds until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tosplus.sim.behaviours import BEHAVIOURS, SimDevice, create_device
from tosplus.sim.provision import DeviceCredentials, HubApi

log = logging.getLogger("tosplus.sim")


@dataclass(slots=True)
class FleetStats:
    devices: int
    connected: int = 0
    failed: int = 0
    telemetry: int = 0
    connect_s: float | None = None  # how long connecting the whole fleet took
    simulators: list[SimDevice] = field(default_factory=list, repr=False)

    def count_telemetry(self) -> int:
        self.telemetry = sum(d.telemetry_sent for d in self.simulators)
        return self.telemetry


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft limit of open files towards ``wanted`` (each device holds a socket)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("only %d files may be open (hard limit): a fleet this big may not all connect", target)


async def run_devices(
    credentials: Sequence[DeviceCredentials],
    *,
    host: str,
    port: int,
    period_s: float,
    stop: asyncio.Event,
    progress: bool = False,
    concurrency: int = 200,
    speed: float = 1.0,
    connect_timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
    console: Console | None = None,
) -> FleetStats:
    """Connect every device (at most ``concurrency`` connecting at once) and run them until ``stop``."""
    raise_fd_limit(len(credentials) + 256)
    gate = asyncio.Semaphore(max(1, concurrency))
    stats = FleetStats(devices=len(credentials))
    stats.simulators = [
        create_device(
            c.product_id,
            c.id,
            c.secret,
            host=host,
            port=port,
            period_s=period_s,
            speed=speed,
            labels=c.labels,
            client_options=client_options,
        )
        for c in credentials
    ]
    started = time.monotonic()

    def ready(device: SimDevice, ok: bool) -> None:
        if ok:
            stats.connected += 1
        else:
            stats.failed += 1
            log.warning("%s did not connect within %.0f s (it keeps trying)", device.device_id, connect_timeout_s)
        if stats.connected + stats.failed == stats.devices:
            stats.connect_s = time.monotonic() - started

    async def one(device: SimDevice) -> None:
        try:
            await device.run(stop, gate=gate, on_ready=ready, connect_timeout_s=connect_timeout_s, jitter=True)
        except Exception:
            log.exception("simulated %s stopped", device.device_id)

    tasks = [asyncio.create_task(one(d)) for d in stats.simulators]
    everything = asyncio.gather(*tasks)
    if progress:
        await _show_progress(stats, everything, console or Console(stderr=True))
    await everything
    stats.count_telemetry()
    return stats


async def _show_progress(stats: FleetStats, running: asyncio.Future[Any], console: Console) -> None:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        connecting = bar.add_task("connecting", total=stats.devices)
        sending: Any = None
        while not running.done():
            done = stats.connected + stats.failed
            label = f"connecting ({stats.failed} not yet)" if stats.failed else "connecting"
            bar.update(connecting, completed=done, description=label)
            if done >= stats.devices and sending is None:
                sending = bar.add_task("telemetry sent", total=None)
            if sending is not None:
                bar.update(sending, completed=stats.count_telemetry())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), 0.5)
        bar.update(connecting, completed=stats.connected + stats.failed)


async def run_fleet(
    api_url: str,
    token: str,
    product_id: str,
    n: int,
    *,
    period_s: float = 5.0,
    stop: asyncio.Event,
    progress: bool = True,
    concurrency: int = 200,
    speed: float = 1.0,
    name_prefix: str | None = None,
    http: httpx.AsyncClient | None = None,
    client_options: dict[str, Any] | None = None,
) -> FleetStats:
    """Bulk-create ``n`` devices of ``product_id`` on the hub and run them (see :func:`run_devices`)."""
    if product_id not in BEHAVIOURS:
        raise ValueError(f"no simulator for product {product_id!r}; known: {sorted(BEHAVIOURS)}")
    if n < 1:
        raise ValueError("a fleet needs at least one device")
    async with HubApi(api_url, token, client=http) as api:
        host, port = await api.mqtt_endpoint()
        credentials = await api.create_devices_bulk(product_id, n, name_prefix or f"fleet-{product_id}")
    log.info("created %d %s devices; connecting to mqtt://%s:%d", len(credentials), product_id, host, port)
    return await run_devices(
        credentials,
        host=host,
        port=port,
        period_s=period_s,
        stop=stop,
        progress=progress,
        concurrency=concurrency,
        speed=speed,
        client_options=client_options,
    )
