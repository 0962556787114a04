"""Simulators of the city products: parking sensor, street light, traffic counter, air-quality station.

The traffic counter and the air-quality station replay the real hourly data sets (:mod:`tosplus.sim.datasets`).
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any, ClassVar

from tosplus.sim import datasets
from tosplus.sim.device import SimDevice


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
