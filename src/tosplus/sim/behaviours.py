"""Simulated devices, one class per catalog product, built on the device SDK.

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

# ------------------------------------------------------------------------------------------------------------
# home


TV_APPS = ("netflix", "youtube", "prime-video", "disney-plus", "spotify", "bbc-iplayer")


class SmartTv(SimDevice):
    product_id = "smart-tv"
    default_period_s = 30.0

    def setup(self) -> None:
        self.state.update(
            power=True, volume=20, muted=False, channel=1, input="tv", app="", picture_mode="standard", power_w=0.5
        )

    def step(self, dt: float) -> None:
        on = bool(self.state["power"])
        target = 60 + 0.4 * self.state["volume"] + (25 if self.state["picture_mode"] == "vivid" else 0) if on else 0.5
        self.state["power_w"] = max(0.3, target + (self.rng.gauss(0, 3) if on else 0))
        if on and self.chance(2, dt):  # someone zaps
            self.emit("button_pressed", {"key": "ch_up", "source": "remote"})
            self.state.update(channel=self.state["channel"] % 999 + 1, input="tv", app="")

    def apply_setting(self, key: str, value: Any) -> None:
        self.state[key] = value
        if key == "app":
            if value:
                self.state.update(input="app", power=True)
            elif self.state["input"] == "app":
                self.state["input"] = "tv"
        elif key == "input" and value != "app":
            self.state["app"] = ""
        elif key == "channel":
            self.state.update(input="tv", app="")

    def action_launch_app(self, params: dict[str, Any]) -> dict[str, Any]:
        self.apply_setting("app", params["app_id"])
        return {"app_id": params["app_id"], "launched": True}

    def action_set_channel(self, params: dict[str, Any]) -> dict[str, Any]:
        self.apply_setting("channel", int(params["channel"]))
        self.state["power"] = True
        return {"channel": self.state["channel"]}

    def action_key_press(self, params: dict[str, Any]) -> dict[str, Any]:
        key = params["key"]
        s = self.state
        if key == "power":
            s["power"] = not s["power"]
        elif key in ("vol_up", "vol_down"):
            s["volume"] = min(100, max(0, s["volume"] + (5 if key == "vol_up" else -5)))
            s["muted"] = False
        elif key == "mute":
            s["muted"] = not s["muted"]
        elif key in ("ch_up", "ch_down"):
            self.apply_setting("channel", max(1, s["channel"] + (1 if key == "ch_up" else -1)))
        elif key.isdigit():
            self.apply_setting("channel", int(key) or 10)
        elif key in ("home", "back") and s["input"] == "app":
            self.apply_setting("app", "")
        self.emit("button_pressed", {"key": key, "source": "app"})
        return {"key": key}


class Fridge(SimDevice):
    product_id = "fridge"
    default_period_s = 60.0
    status_keys = ("door_open",)

    def setup(self) -> None:
        self.state.update(
            fridge_setpoint_c=4.0,
            freezer_setpoint_c=-18.0,
            fridge_temp_c=4.0 + self.rng.uniform(-0.5, 0.5),
            freezer_temp_c=-18.0 + self.rng.uniform(-0.5, 0.5),
            door_open=False,
            ice_maker="normal",
            eco_mode=False,
            power_w=2.0,
        )
        self._door_close_in = 0.0
        self._door_open_for = 0.0
        self._alerted = False
        self._compressor = False
        self._defrost_left = 0.0
        self._defrost_min = 0
        self._alarm = False

    def step(self, dt: float) -> None:
        s = self.state
        if not s["door_open"] and self.chance(1.5, dt):
            s["door_open"] = True
            self._door_open_for, self._alerted = 0.0, False
            self._door_close_in = self.rng.uniform(180, 420) if self.rng.random() < 0.05 else self.rng.uniform(5, 50)
        elif s["door_open"]:
            self._door_open_for += dt
            if self._door_open_for >= 60 and not self._alerted:
                self._alerted = True
                self.emit("door_left_open", {"door": "fridge", "open_s": int(self._door_open_for)})
            if self._door_open_for >= self._door_close_in:
                s["door_open"] = False
        # the compressor cycles around the setpoint; an open door lets the warmth in
        setpoint = s["fridge_setpoint_c"] + (0.5 if s["eco_mode"] else 0.0)
        if s["fridge_temp_c"] > setpoint + 0.8:
            self._compressor = True
        elif s["fridge_temp_c"] < setpoint - 0.8:
            self._compressor = False
        warm_rate = 0.02 if s["door_open"] else 0.0006  # °C/s toward the kitchen
        s["fridge_temp_c"] += (21 - s["fridge_temp_c"]) * warm_rate * dt / 10
        if self._compressor:
            s["fridge_temp_c"] -= 0.004 * dt
        freezer_target = s["freezer_setpoint_c"] + (6.0 if self._defrost_left > 0 else 0.0)
        s["freezer_temp_c"] += (freezer_target - s["freezer_temp_c"]) * (1 - math.exp(-dt / 1800))
        s["freezer_temp_c"] += self.rng.gauss(0, 0.01)
        if self._defrost_left > 0:
            self._defrost_left -= dt
            if self._defrost_left <= 0:
                self.emit("defrost_finished", {"duration_min": self._defrost_min})
        power = 2.0 + (95 if self._compressor else 0) + (180 if self._defrost_left > 0 else 0)
        power += {"off": 0, "normal": 8, "rapid": 25}[s["ice_maker"]]
        s["power_w"] = power + self.rng.gauss(0, 1)
        alarm = s["fridge_temp_c"] > 10
        if alarm and not self._alarm:
            self.emit("temperature_alarm", {"compartment": "fridge", "temperature_c": s["fridge_temp_c"]})
        self._alarm = alarm

    def action_defrost(self, params: dict[str, Any]) -> dict[str, Any]:
        minutes = int(params.get("duration_min", 20))
        self._defrost_left, self._defrost_min = minutes * 60.0, minutes
        until = int((time.time() + minutes * 60 / self.speed) * 1000)
        return {"started": True, "until_ms": until}


WORKOUT_HR = {"none": 68, "walk": 98, "run": 152, "cycle": 132, "swim": 138}
WORKOUT_STEPS_PER_S = {"none": 0.12, "walk": 1.8, "run": 2.8, "cycle": 0.0, "swim": 0.0}


class Smartwatch(SimDevice):
    product_id = "smartwatch"
    default_period_s = 10.0

    def setup(self) -> None:
        self.state.update(
            heart_rate=70,
            steps=self.rng.randint(0, 3000),
            battery=self.rng.randint(55, 100),
            spo2_pct=97,
            skin_temp_c=33.0,
            workout="none",
            do_not_disturb=False,
            hr_alert_bpm=150,
        )
        self._hr = 70.0
        self._battery = float(self.state["battery"])
        self._charging = False
        self._hr_alerted = False
        self._low_alerted = False

    def step(self, dt: float) -> None:
        s = self.state
        base = WORKOUT_HR[s["workout"]]
        self._hr += (base - self._hr) * (1 - math.exp(-dt / 60)) + self.rng.gauss(0, 1.5) * math.sqrt(dt / 5)
        self._hr = min(200.0, max(40.0, self._hr))
        s["heart_rate"] = round(self._hr)
        rate = WORKOUT_STEPS_PER_S[s["workout"]]
        if s["workout"] == "none" and self.rng.random() < 0.1:
            rate = 1.6  # walking about
        s["steps"] += max(0, round(self.rng.gauss(rate * dt, math.sqrt(rate * dt + 0.01))))
        s["spo2_pct"] = min(100, max(90, round(97 + self.rng.gauss(0, 0.8))))
        s["skin_temp_c"] = 33.0 + (1.0 if s["workout"] != "none" else 0.0) + self.rng.gauss(0, 0.1)
        if self._charging:
            self._battery += dt / 60 * 1.5
            if self._battery >= 100:
                self._battery, self._charging, self._low_alerted = 100.0, False, False
        else:
            self._battery -= dt / 1200 * (2.5 if s["workout"] != "none" else 1.0)
            if self._battery <= 10 and not self._low_alerted:
                self._low_alerted = True
                self.emit("low_battery", {"battery": round(self._battery)})
            if self._battery <= 3:
                self._charging = True
        s["battery"] = round(max(0.0, self._battery))
        over = s["heart_rate"] > s["hr_alert_bpm"]
        if over and not self._hr_alerted:
            self.emit("heart_rate_alert", {"heart_rate": s["heart_rate"], "threshold": s["hr_alert_bpm"]})
        self._hr_alerted = over
        if self.chance(0.02, dt):
            severity = "high" if self.rng.random() < 0.3 else "low"
            self.emit(
                "fall_detected",
                {
                    "severity": severity,
                    "lat": 51.5072 + self.rng.gauss(0, 0.01),
                    "lon": -0.1276 + self.rng.gauss(0, 0.01),
                },
            )
        if self.chance(0.5, dt):
            self.emit("button_pressed", {"button": self.rng.choice(["crown", "side"]), "long": False})

    def action_vibrate(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"vibrated": not self.state["do_not_disturb"] or params.get("pattern") == "sos"}

    def action_reset_steps(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state["steps"] = 0
        return {"steps": 0}


PHONE_APPS = (
    "com.whatsapp",
    "com.spotify.music",
    "org.mozilla.firefox",
    "com.google.android.apps.maps",
    "com.instagram.android",
    "org.tosplus.companion",
)


class Smartphone(SimDevice):
    product_id = "smartphone"
    default_period_s = 60.0
    status_keys = ("charging", "network", "screen_on", "app")

    def setup(self) -> None:
        self.state.update(
            battery=self.rng.randint(40, 100),
            charging=False,
            network="wifi",
            signal_dbm=-60,
            screen_on=False,
            app="",
            storage_free_gb=round(self.rng.uniform(5, 90), 1),
            ringer="normal",
            volume=60,
            do_not_disturb=False,
        )
        self._battery = float(self.state["battery"])
        self._low_alerted = False

    def step(self, dt: float) -> None:
        s = self.state
        if s["screen_on"]:
            if self.chance(20, dt):
                s.update(screen_on=False, app="")
            elif self.chance(30, dt):
                s["app"] = self.rng.choice(PHONE_APPS)
        elif self.chance(12, dt):
            s.update(screen_on=True, app=self.rng.choice(PHONE_APPS))
        if self.chance(1, dt):
            s["network"] = self.rng.choice(["wifi", "wifi", "5g", "4g"])
        floor = -55 if s["network"] == "wifi" else -85
        s["signal_dbm"] = round(floor + self.rng.gauss(0, 6))
        if s["charging"]:
            self._battery += dt / 60 * 1.2
            if self._battery >= 100:
                self._battery, s["charging"], self._low_alerted = 100.0, False, False
        else:
            self._battery -= dt / 3600 * (12 if s["screen_on"] else 2)
            if self._battery <= 15 and not self._low_alerted:
                self._low_alerted = True
                self.emit("low_battery", {"battery": round(self._battery)})
            if self._battery <= 8 or (self._battery < 60 and self.chance(0.1, dt)):
                s["charging"] = True
        s["battery"] = round(max(0.0, self._battery))
        if self.chance(0.02, dt):
            s["storage_free_gb"] = max(0.5, s["storage_free_gb"] - 0.2)
            self.emit("app_installed", {"app_id": self.rng.choice(PHONE_APPS)})

    def action_ring(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ringing": True, "duration_s": int(params.get("duration_s", 30))}

    def action_launch_app(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state.update(screen_on=True, app=params["app_id"])
        return {"app_id": params["app_id"], "launched": True}

    def action_lock(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state.update(screen_on=False, app="")
        return {"locked": True}


class Light(SimDevice):
    product_id = "light"
    default_period_s = 30.0
    rated_w: ClassVar[float] = 9.5

    def setup(self) -> None:
        self.state.update(on=self.rng.random() < 0.5, brightness=80, color_temp_k=2700, power_w=0.3, energy_wh=0.0)
        self._update_power()

    def _update_power(self) -> None:
        s = self.state
        if s["on"] and s["brightness"] > 0:
            # LED drivers draw a little more for cold white
            warmth = 1.0 + 0.05 * (s["color_temp_k"] - 2200) / 4300
            s["power_w"] = 0.3 + self.rated_w * (s["brightness"] / 100) ** 1.1 * warmth
        else:
            s["power_w"] = 0.3

    def step(self, dt: float) -> None:
        if self.chance(0.05, dt):  # someone uses the wall switch
            self.state["on"] = not self.state["on"]
            self.emit("button_pressed", {"button": "toggle"})
        self._update_power()
        self.state["energy_wh"] += self.state["power_w"] * dt / 3600

    def apply_setting(self, key: str, value: Any) -> None:
        self.state[key] = value
        self._update_power()

    async def action_blink(self, params: dict[str, Any]) -> dict[str, Any]:
        times = int(params["times"])
        await asyncio.sleep(min(0.05 * times, 1.0))
        return {"blinked": times}


class Thermostat(SimDevice):
    product_id = "thermostat"
    default_period_s = 30.0
    status_keys = ("hvac_running", "boost_active")
    heat_rate_c_s: ClassVar[float] = 0.0025  # 1.5 °C in 10 minutes
    cool_rate_c_s: ClassVar[float] = 0.002

    def setup(self) -> None:
        self.state.update(
            target_c=21.0,
            temperature_c=round(18 + self.rng.uniform(-1, 1), 2),
            humidity_pct=45.0,
            mode="heat",
            fan="auto",
            hvac_running=False,
            boost_active=False,
        )
        self._boost_left = 0.0
        self._boost_target = 21.0
        self._alarm: str | None = None

    def outside_c(self) -> float:
        return 8 + 5 * math.sin((self.hour_of_day() - 9) / 24 * 2 * math.pi)

    def step(self, dt: float) -> None:
        s = self.state
        if self._boost_left > 0:
            self._boost_left -= dt
            if self._boost_left <= 0:
                s["boost_active"] = False
        target = self._boost_target if s["boost_active"] else s["target_c"]
        temp = s["temperature_c"]
        mode = s["mode"]
        running: str | None = None
        if mode in ("heat", "auto") and (temp < target - 0.3 or (s["hvac_running"] and temp < target + 0.2)):
            running = "heat"
        elif mode in ("cool", "auto") and (temp > target + 0.3 or (s["hvac_running"] and temp > target - 0.2)):
            running = "cool"
        s["hvac_running"] = running is not None
        temp += (self.outside_c() - temp) * dt / 36000  # the house loses heat to the outside (10 h)
        if running == "heat":
            temp += self.heat_rate_c_s * dt
        elif running == "cool":
            temp -= self.cool_rate_c_s * dt
        if self.chance(0.05, dt):  # a window is opened
            drop = self.rng.uniform(1.0, 2.5)
            temp -= drop
            self.emit("window_open_detected", {"temperature_drop_c": drop})
        s["temperature_c"] = temp + self.rng.gauss(0, 0.005)
        humidity = s["humidity_pct"] + self.rng.gauss(0, 0.3) * math.sqrt(dt / 30)
        if running == "cool":
            humidity -= 0.001 * dt
        s["humidity_pct"] = min(70.0, max(25.0, humidity + (45 - humidity) * dt / 7200))
        alarm = "frost" if temp < 5 else "overheat" if temp > 35 else None
        if alarm and alarm != self._alarm:
            self.emit("temperature_alarm", {"kind": alarm, "temperature_c": temp})
        self._alarm = alarm

    def action_boost(self, params: dict[str, Any]) -> dict[str, Any]:
        minutes = int(params.get("minutes", 30))
        self._boost_target = float(params.get("target_c", min(35.0, self.state["target_c"] + 2)))
        self._boost_left = minutes * 60.0
        self.state["boost_active"] = True
        if self.state["mode"] == "off":
            self.state["mode"] = "auto"
        until = int((time.time() + minutes * 60 / self.speed) * 1000)
        return {"until_ms": until, "target_c": self._boost_target}


class SmartPlug(SimDevice):
    product_id = "smart-plug"
    default_period_s = 10.0

    def setup(self) -> None:
        self.state.update(
            on=True, power_w=0.0, voltage_v=230.0, current_a=0.0, energy_wh=0.0, child_lock=False, max_power_w=3000
        )
        self._load_w = self.rng.uniform(40, 120)
        self._burst_left = 0.0

    def step(self, dt: float) -> None:
        s = self.state
        self._load_w = min(200.0, max(5.0, self._load_w + self.rng.gauss(0, 2) * math.sqrt(dt)))
        if self._burst_left > 0:
            self._burst_left -= dt
        elif self.chance(1, dt):  # the kettle
            self._burst_left = self.rng.uniform(90, 240)
        demand = self._load_w + (2000 if self._burst_left > 0 else 0)
        s["voltage_v"] = 230 + self.rng.gauss(0, 1.5)
        power = demand if s["on"] else 0.0
        if power > s["max_power_w"]:
            self.emit("overload", {"power_w": power, "limit_w": s["max_power_w"]})
            s["on"], power = False, 0.0
        s["power_w"] = power + (0.6 if s["on"] else 0.3)
        s["current_a"] = s["power_w"] / s["voltage_v"]
        s["energy_wh"] += s["power_w"] * dt / 3600
        if not s["child_lock"] and self.chance(0.1, dt):
            s["on"] = not s["on"]
            self.emit("button_pressed", {"on": s["on"]})

    def action_toggle(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state["on"] = not self.state["on"]
        return {"on": self.state["on"]}

    def action_reset_energy(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state["energy_wh"] = 0.0
        return {"energy_wh": 0.0}


PLAYLIST = (
    "Clair de Lune",
    "So What",
    "Bohemian Rhapsody",
    "Hey Jude",
    "Blue in Green",
    "Teardrop",
    "Windowlicker",
    "Svefn-g-englar",
)


class Speaker(SimDevice):
    product_id = "speaker"
    default_period_s = 30.0
    status_keys = ("playing", "track")
    telemetry_keys = ("playing", "volume")

    def setup(self) -> None:
        self.state.update(volume=30, muted=False, source="stream", playing=False, track="")
        self._track_left = 0.0

    def step(self, dt: float) -> None:
        s = self.state
        if s["playing"]:
            self._track_left -= dt
            if self._track_left <= 0:
                s["track"] = self.rng.choice(PLAYLIST)
                self._track_left = self.rng.uniform(150, 330)
        if self.chance(1, dt):
            self.emit("wake_word", {"confidence": self.rng.uniform(0.6, 0.99)})

    def action_play(self, params: dict[str, Any]) -> dict[str, Any]:
        uri = str(params["uri"])
        name = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or uri
        self.state.update(playing=True, track=name[:200], muted=False)
        if "volume" in params:
            self.state["volume"] = int(params["volume"])
        self._track_left = self.rng.uniform(150, 330)
        return {"playing": True, "track": self.state["track"]}

    def action_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state["playing"] = False
        return {"playing": False}

    def action_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        self.state.update(playing=False, track="")
        return {"playing": False}

    def action_say(self, params: dict[str, Any]) -> dict[str, Any]:
        words = len(str(params["text"]).split())
        return {"spoken": True, "duration_s": round(0.4 * words + 0.5, 1)}


# ------------------------------------------------------------------------------------------------------------
# city


class ParkingSensor(SimDevice):
    """An in-ground bay sensor: occupancy follows how full parking is at that hour (Birmingham data)."""

    product_id = "parking-sensor"
    default_period_s = 300.0
    status_keys = ("occupied",)
    mean_stay_s: ClassVar[float] = 3600.0

    def setup(self) -> None:
        self.state.update(
            occupied=self.rng.random() < 0.5,
            battery=self.rng.randint(60, 100),
            temperature_c=15.0,
            rssi_dbm=-95,
            report_interval_s=900,
        )
        self._battery = float(self.state["battery"])
        self._since = 0.0
        path = self.datasets_file(datasets.BIRMINGHAM_PARKING)
        profile = datasets.load_hourly_occupancy(path) if path is not None else None
        self.occupancy_by_hour = profile or datasets.SYNTHETIC_OCCUPANCY
        self._low_alerted = False

    def step(self, dt: float) -> None:
        s = self.state
        p = min(0.97, max(0.03, self.occupancy_by_hour[int(self.hour_of_day()) % 24]))
        leave = 1 / self.mean_stay_s
        arrive = leave * p / (1 - p)  # so that the bay is occupied a fraction p of the time
        rate = leave if s["occupied"] else arrive
        self._since += dt
        if self.rng.random() < 1 - math.exp(-rate * dt):
            s["occupied"] = not s["occupied"]
            self.emit("occupancy_changed", {"occupied": s["occupied"], "previous_s": int(self._since)})
            self._since = 0.0
        self._battery -= dt / (86400 * 30)
        if self._battery <= 15 and not self._low_alerted:
            self._low_alerted = True
            self.emit("low_battery", {"battery": round(self._battery)})
        s["battery"] = round(max(0.0, self._battery))
        s["temperature_c"] = 12 + 6 * math.sin((self.hour_of_day() - 9) / 24 * 2 * math.pi) + self.rng.gauss(0, 0.2)
        s["rssi_dbm"] = round(-95 + self.rng.gauss(0, 4))
        if self.chance(0.001, dt):
            self.emit("tamper", {"magnitude": self.rng.uniform(1, 10)})

    def action_calibrate(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.state["occupied"]:
            raise ValueError("cannot calibrate while the bay is occupied")
        return {"calibrated": True, "baseline": round(self.rng.uniform(48.0, 52.0), 2)}


class StreetLight(SimDevice):
    product_id = "street-light"
    default_period_s = 60.0
    status_keys = ("lamp_fault",)
    apply_last = ("mode",)  # setting on/dim_level means manual control, unless a mode is set with them
    telemetry_keys = ("on", "dim_level", "power_w", "energy_wh", "ambient_lux", "lamp_fault")
    rated_w: ClassVar[float] = 120.0

    def setup(self) -> None:
        self.state.update(
            on=False, dim_level=100, mode="schedule", lamp_fault=False, power_w=0.5, energy_wh=0.0, ambient_lux=0.0
        )
        self._manual_left = 0.0
        self._fault_code = "driver_failure"
        self._schedule()

    def daylight_lux(self) -> float:
        hour = self.hour_of_day()
        if 6.0 <= hour <= 20.0:
            return max(0.0, 30000 * math.sin((hour - 6) / 14 * math.pi)) * self.rng.uniform(0.6, 1.0)
        return self.rng.uniform(0, 8)  # moon and neighbours

    def _schedule(self) -> None:
        s = self.state
        s["ambient_lux"] = self.daylight_lux()
        if s["mode"] == "manual":
            return
        dark = s["ambient_lux"] < 50
        s["on"] = dark
        hour = self.hour_of_day()
        s["dim_level"] = 50 if s["mode"] == "schedule" and (hour >= 23 or hour < 5) else 100

    def step(self, dt: float) -> None:
        s = self.state
        if self._manual_left > 0:
            self._manual_left -= dt
            if self._manual_left <= 0:
                s["mode"] = "schedule"
        self._schedule()
        if not s["lamp_fault"] and s["on"] and self.chance(0.0005, dt):
            s["lamp_fault"] = True
            self._fault_code = self.rng.choice(["open_circuit", "driver_failure", "overheat"])
            self.emit("lamp_fault", {"code": self._fault_code, "description": "lamp current out of range"})
        lit = s["on"] and not s["lamp_fault"] and s["dim_level"] > 0
        s["power_w"] = 0.5 + (self.rated_w * s["dim_level"] / 100 if lit else 0.0)
        s["energy_wh"] += s["power_w"] * dt / 3600

    def apply_setting(self, key: str, value: Any) -> None:
        self.state[key] = value
        if key in ("on", "dim_level"):
            self.state["mode"] = "manual"
        elif key == "mode":
            self._manual_left = 0.0
            self._schedule()

    def action_dim(self, params: dict[str, Any]) -> dict[str, Any]:
        level = int(params["level"])
        self.state.update(mode="manual", dim_level=level, on=level > 0)
        self._manual_left = float(params.get("duration_s", 0))
        lit = not self.state["lamp_fault"] and level > 0
        self.state["power_w"] = 0.5 + (self.rated_w * level / 100 if lit else 0.0)
        return {"dim_level": level}

    def action_test_lamp(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.state["lamp_fault"] and self._fault_code == "overheat" and self.rng.random() < 0.5:
            self.state["lamp_fault"] = False  # it cooled down
            self.emit("lamp_restored", {})
        return {"lamp_fault": self.state["lamp_fault"]}

    async def action_reboot(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.state["lamp_fault"] and self._fault_code == "driver_failure":
            self.state["lamp_fault"] = False
            self.emit("lamp_restored", {})
        return await super().action_reboot(params)


def _start_row(hours: list[datetime | None], rng: random.Random, now: datetime) -> int:
    """A random row of a replay whose hour of day is the current one."""
    candidates = [i for i, at in enumerate(hours) if at is not None and at.hour == now.hour]
    if not candidates:
        return rng.randrange(len(hours)) if hours else 0
    return rng.choice(candidates)


class TrafficCounter(SimDevice):
    """Replays I-94 hourly volumes (vehicles counted per period, speed and occupancy derived from flow)."""

    product_id = "traffic-counter"
    default_period_s = 60.0
    capacity_veh_h: ClassVar[float] = 7300.0

    def setup(self) -> None:
        self.state.update(vehicle_count=0, flow_veh_h=0, avg_speed_kmh=105.0, occupancy_pct=0.0, period_s=300)
        path = self.datasets_file(datasets.TRAFFIC)
        self.rows = datasets.load_traffic(path) if path is not None else ()
        self.replaying = bool(self.rows)
        self._start = _start_row([r.at for r in self.rows], self.rng, self.sim_now()) if self.rows else 0
        self._counted = 0.0
        self._total = 0
        self._congested = False

    def flow_now(self) -> float:
        """Vehicles per hour at the simulated time (interpolated between data hours)."""
        hours = self.sim_elapsed_s / 3600
        if self.rows:
            i, frac = self._start + int(hours), hours - int(hours)
            a = self.rows[i % len(self.rows)].volume
            b = self.rows[(i + 1) % len(self.rows)].volume
            return a + (b - a) * frac
        h = self.hour_of_day()
        peaks = math.exp(-((h - 8) ** 2) / 2) + math.exp(-((h - 17) ** 2) / 3)
        return 300 + 5800 * min(1.0, 0.25 + peaks) * (1 if 5 <= h <= 23 else 0.2)

    def step(self, dt: float) -> None:
        s = self.state
        flow = self.flow_now()
        expected = flow * dt / 3600
        self._counted += max(0.0, self.rng.gauss(expected, math.sqrt(expected + 1e-9)))
        ratio = min(1.0, flow / self.capacity_veh_h)
        s["flow_veh_h"] = round(flow)
        s["avg_speed_kmh"] = max(15.0, 108 * (1 - 0.55 * ratio**3) + self.rng.gauss(0, 2))
        s["occupancy_pct"] = min(100.0, max(0.0, 32 * ratio**1.5 + self.rng.gauss(0, 0.5)))
        congested = s["occupancy_pct"] > 25
        if congested and not self._congested:
            self.emit("congestion", {"occupancy_pct": s["occupancy_pct"], "avg_speed_kmh": s["avg_speed_kmh"]})
        self._congested = congested
        if self.chance(0.0005, dt):
            self.emit("wrong_way_driver", {"lane": self.rng.randint(1, 3)})

    def telemetry(self) -> dict[str, Any]:
        counted = int(self._counted)
        self._counted -= counted
        self._total += counted
        self.state["vehicle_count"] = counted
        return super().telemetry()

    def action_reset_counter(self, params: dict[str, Any]) -> dict[str, Any]:
        self._counted, self._total = 0.0, 0
        self.state["vehicle_count"] = 0
        return {"vehicle_count": 0}


AQ_LIMITS = {
    "co": ("co_mg_m3", 10.0),
    "no2": ("no2_ug_m3", 200.0),
    "nox": ("nox_ppb", 600.0),
    "c6h6": ("c6h6_ug_m3", 25.0),
}


class AirQualityStation(SimDevice):
    """Replays the UCI hourly air quality (missing values are left out of the telemetry)."""

    product_id = "air-quality-station"
    default_period_s = 60.0

    def setup(self) -> None:
        self.state.update(sample_interval_s=600)
        path = self.datasets_file(datasets.AIR_QUALITY)
        self.rows = datasets.load_air_quality(path) if path is not None else ()
        self.replaying = bool(self.rows)
        self._start = _start_row([r.at for r in self.rows], self.rng, self.sim_now()) if self.rows else 0
        self._over: set[str] = set()
        self._readings: dict[str, float] = {}
        self.step(0.0)

    def readings_now(self) -> dict[str, float]:
        if self.rows:
            return dict(self.rows[(self._start + int(self.sim_elapsed_s / 3600)) % len(self.rows)].values)
        h = self.hour_of_day()
        rush = math.exp(-((h - 8.5) ** 2) / 3) + math.exp(-((h - 19) ** 2) / 4)
        temp = 15 + 7 * math.sin((h - 9) / 24 * 2 * math.pi)
        rh = max(15.0, min(90.0, 60 - 1.5 * (temp - 15)))
        return {
            "co_mg_m3": 0.8 + 2.5 * rush,
            "no2_ug_m3": 60 + 80 * rush,
            "nox_ppb": 80 + 250 * rush,
            "c6h6_ug_m3": 3 + 10 * rush,
            "temperature_c": temp,
            "rh_pct": rh,
            "ah": rh / 100 * 6.112 * math.exp(17.67 * temp / (temp + 243.5)) * 2.1674 / (273.15 + temp),
        }

    def step(self, dt: float) -> None:
        values = self.readings_now()
        jitter = {
            k: v * (1 + self.rng.gauss(0, 0.01)) if k != "temperature_c" else v + self.rng.gauss(0, 0.05)
            for k, v in values.items()
        }
        self._readings = jitter
        for name, (key, limit) in AQ_LIMITS.items():
            value = jitter.get(key)
            if value is None:
                continue
            if value > limit and name not in self._over:
                self._over.add(name)
                self.emit("threshold_exceeded", {"pollutant": name, "value": value, "limit": limit})
            elif value <= limit:
                self._over.discard(name)

    def telemetry(self) -> dict[str, Any]:
        return {k: self._conform(k, v) for k, v in self._readings.items()}

    def action_calibrate(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"calibrated": True}


BEHAVIOURS: dict[str, type[SimDevice]] = {
    cls.product_id: cls
    for cls in (
        SmartTv,
        Fridge,
        Smartwatch,
        Smartphone,
        Light,
        Thermostat,
        SmartPlug,
        Speaker,
        ParkingSensor,
        StreetLight,
        TrafficCounter,
        AirQualityStation,
    )
}


def create_device(product_id: str, device_id: str, secret: str, **options: Any) -> SimDevice:
    """A simulator for ``product_id`` (any keyword of :class:`SimDevice`)."""
    try:
        cls = BEHAVIOURS[product_id]
    except KeyError:
        raise ValueError(f"no simulator for product {product_id!r}; known: {sorted(BEHAVIOURS)}") from None
    return cls(device_id, secret, **options)
