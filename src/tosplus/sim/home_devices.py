"""Simulators of the home products: TV, fridge, watch, phone, light, thermostat, plug, speaker."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, ClassVar

from tosplus.sim.device import SimDevice

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
