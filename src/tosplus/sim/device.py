"""The simulated device: what every product's simulator shares (the registry is :mod:`tosplus.sim.behaviours`).

A :class:`SimDevice` keeps its properties in ``state`` (named as in its thing model), advances them with
:meth:`SimDevice.step` (simulated seconds: wall time times ``speed``), and every ``period_s`` sends:

* telemetry: the values listed in ``telemetry_keys`` (by default the read-only numbers and booleans);
* reported state: the writable properties and ``status_keys`` that changed since last reported;
* the events raised by ``step`` (:meth:`SimDevice.emit`).

Desired state is applied through :meth:`SimDevice.apply_setting` (checked against the model first) and
reported back; every action of the model is a method ``action_<name>(params)``, so each simulator answers
all of its model's actions (``reboot`` included: the device goes offline for a moment and comes back).
Values are clamped to their schema's range before sending, so the hub never refuses a simulator's data.

Replays: the traffic counter and the air-quality station play the real hourly data sets (see
:mod:`tosplus.sim.datasets`), one data-set hour per simulated hour, starting at the current hour of day; the
parking sensors take how full parking is by hour of day from the Birmingham data. With ``speed`` 60 an
hour of data passes in a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from tosplus.catalog import load_catalog
from tosplus.core.thing_model import DataSchema, ThingModel, parse_thing_model
from tosplus.sdk import DeviceClient, DeviceError
from tosplus.sim import datasets

log = logging.getLogger("tosplus.sim")

ReadyCallback = Callable[["SimDevice", bool], None]


@functools.cache
def _catalog() -> dict[str, dict[str, Any]]:
    return load_catalog()


@functools.cache
def thing_model(product_id: str) -> ThingModel:
    """The compiled thing model of a catalog product."""
    return parse_thing_model(_catalog()[product_id])


def conform(schema: DataSchema, value: Any) -> Any:
    """``value`` brought within ``schema``: numbers clamped and rounded, integers made int, strings cut."""
    if schema.type in ("number", "integer") and isinstance(value, int | float) and not isinstance(value, bool):
        if schema.minimum is not None:
            value = max(value, schema.minimum)
        if schema.maximum is not None:
            value = min(value, schema.maximum)
        return round(value) if schema.type == "integer" else round(float(value), 3)
    if schema.type == "string" and isinstance(value, str) and schema.max_length is not None:
        return value[: schema.max_length]
    return value


class SimDevice:
    """Base of the simulators: the SDK session, the clock, desired state, actions and publishing."""

    product_id: ClassVar[str] = ""
    default_period_s: ClassVar[float] = 30.0
    status_keys: ClassVar[tuple[str, ...]] = ()  # read-only properties that are also reported twin state
    telemetry_keys: ClassVar[tuple[str, ...] | None] = None  # None: read-only numbers and booleans
    apply_last: ClassVar[tuple[str, ...]] = ()  # desired keys applied after the others (e.g. a mode)
    max_step_s: ClassVar[float] = 5.0
    reboot_time_s: ClassVar[float] = 2.0
    confirms_up_to: ClassVar[int] = 100_000  # fen: what the simulated person confirms when asked to pay

    def __init__(
        self,
        device_id: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        period_s: float | None = None,
        speed: float = 1.0,
        seed: int | None = None,
        labels: Mapping[str, str] | None = None,
        buffer_dir: Path | None = None,
        protocol: int = 3,
        datasets_dir: Path | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.device_id = device_id
        self.secret = secret
        self.host = host
        self.port = port
        self.period_s = period_s if period_s is not None else self.default_period_s
        self.speed = speed
        self.labels = dict(labels or {})
        self.buffer_dir = buffer_dir
        self.protocol = protocol
        self.datasets_dir = datasets_dir
        self.client_options = dict(client_options or {})
        self.rng = random.Random(seed if seed is not None else device_id)
        self.model = thing_model(self.product_id)
        self.writable = tuple(k for k, s in self.model.properties.items() if not s.read_only)
        if self.telemetry_keys is None:
            self._telemetry_keys = tuple(
                k
                for k, s in self.model.properties.items()
                if s.read_only and s.type in ("number", "integer", "boolean")
            )
        else:
            self._telemetry_keys = self.telemetry_keys
        self.clock_origin = time.time()
        self.sim_elapsed_s = 0.0
        self.state: dict[str, Any] = {}
        self.pending_events: list[tuple[str, dict[str, Any]]] = []
        self.client: DeviceClient | None = None
        self.telemetry_sent = 0
        self.reboots = 0
        self.payments_confirmed = 0
        self._last_reported: dict[str, Any] = {}
        self._reboot = asyncio.Event()
        self._reboot_delay_s = 0.0
        self.setup()
        self.state = {k: self._conform(k, v) for k, v in self.state.items()}

    # -- what subclasses fill in ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Set the initial ``state``."""

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` simulated seconds (at most ``max_step_s`` at a time)."""

    def apply_setting(self, key: str, value: Any) -> None:
        """Apply one desired property (already checked against the model)."""
        self.state[key] = value

    def telemetry(self) -> dict[str, Any]:
        return {k: self.state[k] for k in self._telemetry_keys if k in self.state}

    async def action_reboot(self, params: dict[str, Any]) -> dict[str, Any]:
        delay = int(params.get("delay_s", 0))
        self._reboot_delay_s = delay
        self._reboot.set()
        return {"rebooting": True, "delay_s": delay}

    def action_confirm_payment(self, params: dict[str, Any]) -> dict[str, Any]:
        """The simulated person confirms payments on devices that can pay, up to ``confirms_up_to`` fen."""
        if params["amount"] > self.confirms_up_to:
            raise ValueError(f"declined on the device: {params['amount']} is more than this person pays here")
        self.payments_confirmed += 1
        return {"confirmed": True}

    # -- helpers for subclasses ----------------------------------------------------------------------------

    def sim_now(self) -> datetime:
        """The simulated local time (starts at the real time, runs ``speed`` times faster)."""
        return datetime.fromtimestamp(self.clock_origin + self.sim_elapsed_s)

    def hour_of_day(self) -> float:
        now = self.sim_now()
        return now.hour + now.minute / 60 + now.second / 3600

    def chance(self, per_hour: float, dt: float) -> bool:
        """True with the probability that an event happening ``per_hour`` times an hour happens in ``dt``."""
        return self.rng.random() < 1 - math.exp(-per_hour * dt / 3600)

    def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        schema = self.model.events.get(name)
        payload = dict(data or {})
        if schema is not None:
            payload = {k: conform(schema.properties[k], v) if k in schema.properties else v for k, v in payload.items()}
        self.pending_events.append((name, payload))

    def datasets_file(self, name: str) -> Path | None:
        return datasets.dataset_file(name, self.datasets_dir)

    def _conform(self, key: str, value: Any) -> Any:
        schema = self.model.properties.get(key)
        return conform(schema, value) if schema is not None else value

    # -- the simulation ------------------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Advance by ``dt`` simulated seconds, in steps of at most ``max_step_s`` (at most 2000 steps)."""
        if dt <= 0:
            return
        count = min(2000, max(1, math.ceil(dt / self.max_step_s)))
        each = dt / count
        for _ in range(count):
            self.sim_elapsed_s += each
            self.step(each)
        self.state = {k: self._conform(k, v) for k, v in self.state.items()}

    def reported_state(self) -> dict[str, Any]:
        return {k: self.state[k] for k in (*self.writable, *self.status_keys) if k in self.state}

    def changed_reported(self) -> dict[str, Any]:
        current = self.reported_state()
        return {k: v for k, v in current.items() if self._last_reported.get(k, _UNSET) != v}

    async def report_changes(self, force: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Report what changed (plus ``force``); returns what was reported."""
        changes = self.changed_reported()
        if force:
            changes.update(force)
        if changes and self.client is not None:
            await self.client.report(changes)
        self._last_reported.update(changes)
        return changes

    async def publish(self) -> None:
        """Send telemetry, the events raised since last time and the changed reported state."""
        client = self.client
        if client is None:
            return
        values = self.telemetry()
        if values:
            await client.send_telemetry(values)
            self.telemetry_sent += 1
        events, self.pending_events = self.pending_events, []
        for name, data in events:
            await client.send_event(name, data)
        await self.report_changes()

    # -- desired state and actions -------------------------------------------------------------------------

    async def on_desired(self, changed: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
        """Apply the valid desired values (``apply_last`` keys last) and report the resulting state of each."""
        applied: list[str] = []
        for key, value in sorted(changed.items(), key=lambda kv: kv[0] in self.apply_last):
            schema = self.model.properties.get(key)
            problem = (
                f"'{key}' is not a property"
                if schema is None
                else f"'{key}' is read-only"
                if schema.read_only
                else schema.check(value, key)
            )
            if problem:
                log.warning("%s: desired %s ignored: %s", self.device_id, key, problem)
                continue
            self.apply_setting(key, value)
            applied.append(key)
        accepted = {key: self.state.get(key, changed[key]) for key in applied}
        await self.report_changes(force=accepted)
        return accepted  # what the SDK reports if nothing was (nothing when every value was refused)

    async def on_action(self, name: str, params: Any) -> Any:
        problem = self.model.check_action(name, params)
        if problem:
            raise ValueError(problem)
        method = getattr(self, f"action_{name.replace('-', '_')}", None)
        if method is None:
            raise ValueError(f"the {self.product_id} simulator has no behaviour for the action {name}")
        result = method(dict(params or {}))
        if inspect.isawaitable(result):
            result = await result
        await self.report_changes()
        return result

    # -- running -------------------------------------------------------------------------------------------

    async def open(self) -> DeviceClient:
        """Create the SDK client, register the handlers and start connecting (returns at once)."""
        client = DeviceClient(
            self.device_id,
            self.secret,
            host=self.host,
            port=self.port,
            buffer_dir=self.buffer_dir,
            protocol=self.protocol,
            **self.client_options,
        )
        client.on_desired(self.on_desired)
        for name in self.model.actions:
            client.on_command(name, functools.partial(self.on_action, name))
        client.on_error(
            lambda doc: log.warning("%s: hub refused %s: %s", self.device_id, doc.get("topic"), doc.get("reason"))
        )
        await client.start()
        if "confirm_payment" in self.model.actions:
            client.payments.follow()  # its payment token arrives once a person activates payment on it
        self.client = client
        self._last_reported = {}
        await self.report_changes()
        return client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    async def run(
        self,
        stop: asyncio.Event,
        *,
        gate: asyncio.Semaphore | None = None,
        on_ready: ReadyCallback | None = None,
        connect_timeout_s: float = 30.0,
        jitter: bool = False,
    ) -> None:
        """Run until ``stop`` is set (reboots included).

        With ``gate`` or ``on_ready``, the first connection is awaited (holding ``gate`` while connecting) and
        ``on_ready(device, connected)`` is called once. ``jitter`` spreads the first telemetry over a period.
        """
        first = True
        while not stop.is_set():
            if gate is not None or on_ready is not None:
                ok = await self._open_and_wait(gate, connect_timeout_s, stop)
                if first and on_ready is not None and (ok or not stop.is_set()):
                    on_ready(self, ok)
            else:
                await self.open()
            try:
                rebooting = await self._loop(stop, jitter=first and jitter)
            finally:
                await self.close()
            first = False
            if not rebooting:
                return
            self.reboots += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.reboot_time_s)

    async def _open_and_wait(self, gate: asyncio.Semaphore | None, timeout_s: float, stop: asyncio.Event) -> bool:
        """Open and wait until connected, ``timeout_s`` passed, or ``stop`` is set; ``True`` when connected."""
        async with gate if gate is not None else contextlib.nullcontext():
            client = await self.open()
            connected = asyncio.create_task(client.wait_connected(timeout_s))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({connected, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (connected, stopping):
                    task.cancel()
                await asyncio.gather(connected, stopping, return_exceptions=True)
            return client.connected

    async def _loop(self, stop: asyncio.Event, *, jitter: bool) -> bool:
        """Tick until stopped (``False``) or asked to reboot (``True``)."""
        self._reboot.clear()
        stopping = asyncio.create_task(stop.wait())
        rebooting = asyncio.create_task(self._reboot.wait())
        # A device that has just (re)connected sends its readings at once; a fleet spreads its first ones out.
        wait_s = self.rng.uniform(0, self.period_s) if jitter else 0.0
        last = time.monotonic()
        try:
            while True:
                await asyncio.wait({stopping, rebooting}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    return False
                if self._reboot.is_set():
                    await self._before_reboot()
                    return True
                now = time.monotonic()
                self.advance((now - last) * self.speed)
                last = now
                await self.publish()
                wait_s = self.period_s
        finally:
            stopping.cancel()
            rebooting.cancel()

    async def _before_reboot(self) -> None:
        client = self.client
        if client is not None:
            with contextlib.suppress(DeviceError):
                await client.flush(3)  # the reboot response goes out before we drop
        if self._reboot_delay_s:
            await asyncio.sleep(min(self._reboot_delay_s, 300))


class _Unset:
    pass


_UNSET = _Unset()
