"""Spoken questions answered from the devices' latest values (telemetry, else the twin's reported state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tosplus.services.homes.access import Need
from tosplus.services.voice.answers import join, word

if TYPE_CHECKING:
    from tosplus.services.voice.actions import Act, Outcome
    from tosplus.services.voice.understanding import DeviceName

# What people ask for → the properties that hold it, first found wins.
KEYS: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature_c", "fridge_temp_c", "skin_temp_c"),
    "target_temperature": ("target_c", "fridge_setpoint_c"),
    "humidity": ("humidity_pct", "rh_pct"),
    "power": ("power_w",),
    "energy": ("energy_wh",),
    "battery": ("battery",),
    "heart_rate": ("heart_rate",),
    "steps": ("steps",),
    "brightness": ("brightness",),
    "volume": ("volume",),
    "channel": ("channel",),
    "spo2": ("spo2_pct",),
    "air_quality": ("no2_ug_m3", "co_mg_m3"),
}
_UNITS = {"°C": "°C", "%": "%", "W": " W", "Wh": " Wh", "bpm": " bpm", "steps": "", "K": " K"}


def _key_of(act: Act, device: DeviceName, quantity: str) -> str | None:
    props = act.hub.registry.model_of(device.id).properties
    return next((k for k in KEYS.get(quantity, ()) if k in props), None)


async def _reading(act: Act, device: DeviceName, key: str) -> Any:
    """The latest value of ``key``: telemetry first, then the twin's reported state; None when never seen."""
    latest = await act.hub.telemetry.latest(device.id)
    if key in latest:
        return latest[key]["value"]
    twin = await act.hub.twins.get(device.id)
    return twin.reported.get(key)


def _shown(act: Act, device: DeviceName, key: str, value: Any) -> str:
    schema = act.hub.registry.model_of(device.id).properties[key]
    unit = schema.unit or ""
    if isinstance(value, float):
        value = f"{value:.1f}".rstrip("0").rstrip(".")
    if unit == "steps" and act.lang == "zh-cn":
        return f"{value}步"
    return f"{value}{_UNITS.get(unit, ' ' + unit if unit else '')}"


async def _answer(act: Act, devices: list[DeviceName], quantity: str) -> Outcome:
    area = act.rec.slots.get("area") or (act.area if "name" not in act.rec.slots else None)
    readings: list[tuple[DeviceName, str]] = []
    for device in devices:
        key = _key_of(act, device, quantity)
        if key is None or not act.allowed(device, Need.DATA):
            continue
        value = await _reading(act, device, key)
        act.done.append({"device_id": device.id, "action": "read", "status": "read", "detail": key})
        if value is not None:
            readings.append((device, _shown(act, device, key, value)))
    what = word(act.lang, quantity)
    if not readings:
        named = "name" in act.rec.slots and bool(devices)
        where = f" for the {devices[0].name}" if named else f" in the {area}" if area else ""
        where_zh = devices[0].name if named else str(area or "")
        return act.finish(act.say("no_value", quantity=what, where=where, where_zh=where_zh), ok=False)
    if len(readings) == 1:
        device, shown = readings[0]
        if "name" not in act.rec.slots and area:
            return act.finish(act.say("value_room", quantity=what, room=area, value=shown))
        return act.finish(act.say("value", quantity=what, name=device.name, value=shown))
    listed = join(act.lang, [f"{d.name} {v}" if act.lang == "zh-cn" else f"{d.name}: {v}" for d, v in readings])
    if area:
        return act.finish(act.say("value_room", quantity=what, room=area, value=listed))
    return act.finish(act.say("value", quantity=what, name=join(act.lang, [d.name for d, _ in readings]), value=""))


def _no_sensor(act: Act, quantity: str) -> Outcome:
    named = act.candidates(None) if "name" in act.rec.slots else []
    if named:
        return act.fail("cannot_measure", name=named[0].name, quantity=word(act.lang, quantity))
    where = act.rec.slots.get("area") or act.area
    return act.fail(
        "no_sensor",
        quantity=word(act.lang, quantity),
        where=f" in the {where}" if where else "",
        where_zh=str(where or "家里"),
    )


def _with_key(act: Act, devices: list[DeviceName], quantity: str) -> list[DeviceName]:
    return [d for d in devices if _key_of(act, d, quantity) is not None]


async def value(act: Act) -> Outcome:
    """``TosGetValue``: a quantity of a named device, of a room, or (nothing named) of the home's devices."""
    quantity = str(act.rec.slots.get("quantity") or "")
    if quantity not in KEYS:
        return act.fail("not_understood")
    named = "name" in act.rec.slots or "area" in act.rec.slots
    devices = _with_key(act, act.candidates(None, whole_home=not named), quantity)
    if not devices and not named:
        devices = _with_key(act, list(act.slots.devices), quantity)
    if not devices:
        return _no_sensor(act, quantity)
    if quantity == "temperature" and not named:
        devices = [d for d in devices if d.kind == "thermostat"] or devices
    return await _answer(act, devices, quantity)


async def temperature(act: Act) -> Outcome:
    """``HassClimateGetTemperature``: the room's thermostat, else any device there that measures it."""
    devices = _with_key(act, act.candidates(None, whole_home=True), "temperature")
    thermostats = [d for d in devices if d.kind == "thermostat"]
    devices = thermostats or [d for d in devices if d.kind not in ("fridge", "watch")] or devices
    if not devices:
        return _no_sensor(act, "temperature")
    return await _answer(act, devices[:1] if "area" not in act.rec.slots else devices, "temperature")


async def state(act: Act) -> Outcome:
    """``HassGetState``: is a device on or off; which lights (of a room) are on or off."""
    slots = act.rec.slots
    if "name" in slots:
        devices = act.candidates(None)
        if not devices:
            return act.nothing("device")
        device = devices[0]
        if not act.allowed(device, Need.DATA):
            return act.fail("not_allowed", name=device.name)
        on = await _is_on(act, device)
        act.done.append({"device_id": device.id, "action": "read", "status": "read", "detail": "on"})
        if on is None:
            quantity = next((q for q in ("battery", "temperature", "power") if _key_of(act, device, q)), None)
            if quantity is not None and "state" not in slots:
                return await _answer(act, [device], quantity)
            return act.finish(act.say("state_unknown", name=device.name), ok=False)
        return act.finish(act.say("state_on" if on else "state_off", name=device.name))
    kinds = {"light"} if slots.get("domain") == "light" else {"plug"} if slots.get("domain") == "switch" else None
    devices = [d for d in act.candidates(kinds, whole_home=True) if act.allowed(d, Need.DATA)]
    want_on = slots.get("state", "on") == "on"
    matching = []
    for device in devices:
        on = await _is_on(act, device)
        act.done.append({"device_id": device.id, "action": "read", "status": "read", "detail": "on"})
        if on is not None and on == want_on:
            matching.append(device.name)
    if not matching:
        return act.finish(act.say("none_on" if want_on else "none_off"))
    return act.finish(act.say("which_on" if want_on else "which_off", names=join(act.lang, matching)))


async def _is_on(act: Act, device: DeviceName) -> bool | None:
    for key in ("on", "power"):
        if key in act.hub.registry.model_of(device.id).properties:
            found = await _reading(act, device, key)
            if isinstance(found, bool):
                return found
            twin = await act.hub.twins.get(device.id)
            desired = twin.desired.get(key)
            return desired if isinstance(desired, bool) else None
    return None
