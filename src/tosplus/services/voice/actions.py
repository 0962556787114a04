"""Recognised intent → action on the person's home, with that person's permissions, and an answer in words.

Everything goes through what the REST API uses: desired state through ``Twins.patch_desired`` and commands
through ``Commands.send`` (each audited as ``device.desired`` / ``device.command`` like the API, with
``"via": "voice"``), scenes through ``Scenes.run``, payments through the payment intents service. Every target
is checked with ``Access.require`` for the caller: a guest can only act on the devices of their membership,
and the names they may use come only from what they may see (``home_slots``).

A spoken payment is a payment intent in ``requires_confirmation``: it never completes without the person
confirming it on their device or in the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tosplus.core import commands as cmd
from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden, NotFound, TosError
from tosplus.services.homes.access import Need
from tosplus.services.voice import answers
from tosplus.services.voice.answers import join, say, word
from tosplus.services.voice.timers import Timer, timers_of
from tosplus.services.voice.understanding import DeviceName, Recognized, Slots, home_slots

if TYPE_CHECKING:
    from tosplus.app import Hub

SWITCHABLE = {"light", "plug", "tv", "thermostat"}
MEDIA = {"tv", "speaker"}
KINDS_OF_DOMAIN = {
    "light": {"light"},
    "switch": {"plug"},
    "media_player": {"tv", "speaker"},
    "climate": {"thermostat"},
}


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str  # the answer, in the request's language
    device_ids: tuple[str, ...] = ()  # devices touched (changed or asked to act)
    ok: bool = True  # False: nothing was done (not understood, not allowed, not possible)
    done: tuple[dict[str, Any], ...] = ()  # one entry per thing done: device, what, status, detail
    data: dict[str, Any] = field(default_factory=dict)  # e.g. the payment intent created

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.text, "ok": self.ok, "devices": list(self.device_ids), "done": list(self.done)}


@dataclass(slots=True)
class Act:
    """One request being acted on."""

    hub: Hub
    principal: Principal
    home_id: str
    rec: Recognized
    slots: Slots
    device_id: str | None  # the device spoken to, if any
    area: str | None  # its room
    ip: str | None
    done: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.rec.language

    def say(self, key: str, **values: Any) -> str:
        return say(self.lang, key, **values)

    def fail(self, key: str, **values: Any) -> Outcome:
        return Outcome(self.say(key, **values), ok=False, done=tuple(self.done))

    def finish(self, text: str, ok: bool = True, **data: Any) -> Outcome:
        touched = tuple(dict.fromkeys(d["device_id"] for d in self.done if d["status"] not in ("read", "refused")))
        return Outcome(text, touched, ok, tuple(self.done), data)

    # -- finding devices --------------------------------------------------------------------------------------

    def candidates(self, kinds: set[str] | None, *, whole_home: bool = False) -> list[DeviceName]:
        """Devices the sentence names (``name``, ``area``, else the room spoken in, else — with ``whole_home`` —
        the whole home), of ``kinds``."""
        name, area = self.rec.slots.get("name"), self.rec.slots.get("area")
        if isinstance(name, str):
            found = self.slots.devices_named(name, self.lang)
            if isinstance(area, str):
                found = [d for d in found if d.room and d.room.casefold() == area.casefold()] or found
        elif isinstance(area, str):
            found = self.slots.in_room(area)
        elif whole_home:
            found = list(self.slots.devices)
        elif self.area:
            found = self.slots.in_room(self.area)
        else:
            found = []
        return [d for d in found if kinds is None or d.kind in kinds]

    def one(self, kinds: set[str], what: str) -> DeviceName | Outcome:
        """The single device meant; an answer asking which (or saying there is none) otherwise."""
        found = self.candidates(kinds)
        if not found and "name" not in self.rec.slots and "area" not in self.rec.slots:
            found = [d for d in self.slots.devices if d.kind in kinds]  # "switch to channel 5": the home's TV
        if len(found) > 1:
            here = [d for d in found if d.id == self.device_id] or [
                d for d in found if self.area and d.room == self.area
            ]
            found = here if len(here) == 1 else found
        if len(found) == 1:
            return found[0]
        if not found:
            return self.nothing(what)
        return self.fail("which_one", names=join(self.lang, [d.name for d in found]))

    def nothing(self, what: str) -> Outcome:
        area = self.rec.slots.get("area") or self.area
        return self.fail(
            "nothing_there",
            what=word(self.lang, what),
            where=f" in the {area}" if area else "",
            where_zh=f"在{area}" if area else "",
        )

    def allowed(self, device: DeviceName, need: Need = Need.CONTROL) -> bool:
        try:
            self.hub.people.access.require(self.principal, device.id, need)
        except (NotFound, Forbidden):
            self.done.append({"device_id": device.id, "action": "access", "status": "refused", "detail": need.value})
            return False
        return True

    # -- doing ------------------------------------------------------------------------------------------------

    async def desired(self, device: DeviceName, patch: dict[str, Any]) -> bool:
        """Set desired state as ``PATCH /devices/{id}/twin/desired`` does; False when refused."""
        if not self.allowed(device):
            return False
        try:
            twin = await self.hub.twins.patch_desired(device.id, patch)
        except TosError as exc:
            self.done.append({"device_id": device.id, "action": "desired", "status": "refused", "detail": exc.detail})
            return False
        await self.hub.people.audit.record(
            self.principal,
            "device.desired",
            home_id=self.home_id,
            device_id=device.id,
            detail={"patch": patch, "version": twin.desired_version, "via": "voice"},
            ip=self.ip,
        )
        online = self.hub.presence.is_online(device.id)
        self.done.append(
            {"device_id": device.id, "action": "desired", "status": "applied" if online else "offline", "detail": patch}
        )
        return True

    async def command(self, device: DeviceName, name: str, params: dict[str, Any] | None = None) -> cmd.Command | None:
        """Send a command as ``POST /devices/{id}/commands`` does and wait (5 s at most) for the answer."""
        if not self.allowed(device):
            return None
        try:
            command = await self.hub.commands.send(device.id, name, params, timeout_s=5.0)
        except TosError as exc:
            self.done.append({"device_id": device.id, "action": name, "status": "refused", "detail": exc.detail})
            return None
        await self.hub.people.audit.record(
            self.principal,
            "device.command",
            home_id=self.home_id,
            device_id=device.id,
            detail={"command_id": command.id, "name": name, "params": params, "state": command.state, "via": "voice"},
            ip=self.ip,
        )
        self.done.append(
            {"device_id": device.id, "action": name, "status": command.state.lower(), "detail": command.error or params}
        )
        return command

    async def run_command(self, device: DeviceName, name: str, params: dict[str, Any] | None, what: str) -> Outcome:
        """One command and the answer telling how it went."""
        command = await self.command(device, name, params)
        if command is None:
            reason = self.done[-1]["detail"] if self.done else ""
            if self.done and self.done[-1]["action"] == "access":
                return self.fail("not_allowed", name=device.name)
            return self.fail("command_failed", name=device.name, what=what, reason=reason)
        if command.state == cmd.SUCCEEDED:
            return self.finish(self.say("command_done", name=device.name, what=what))
        if command.state == cmd.FAILED and command.sent_at is None:
            return self.finish(self.say("command_offline", name=device.name, what=what), ok=False)
        reason = command.error or command.state.lower().replace("_", " ")
        return self.finish(self.say("command_failed", name=device.name, what=what, reason=reason), ok=False)

    def changed_answer(self, key: str, changed: list[DeviceName], **values: Any) -> Outcome:
        offline = [d.name for d in changed if self._offline(d.id)]
        text = self.say(key, names=join(self.lang, [d.name for d in changed]), **values)
        if offline:
            text += self.say("offline_kept", names=join(self.lang, offline), verb="is" if len(offline) == 1 else "are")
        return self.finish(text)

    def _offline(self, device_id: str) -> bool:
        return any(d["device_id"] == device_id and d["status"] == "offline" for d in self.done)

    def refused_answer(self, tried: list[DeviceName]) -> Outcome:
        refused = [d for d in tried if any(x["device_id"] == d.id and x["status"] == "refused" for x in self.done)]
        if refused and refused[0].id in {x["device_id"] for x in self.done if x["action"] == "access"}:
            return self.fail("not_allowed", name=refused[0].name)
        return self.fail("cannot", name=(refused or tried)[0].name)


# -- handlers ---------------------------------------------------------------------------------------------------


def _kinds(rec: Recognized) -> set[str]:
    domain = rec.slots.get("domain")
    return KINDS_OF_DOMAIN.get(domain, SWITCHABLE) if isinstance(domain, str) else SWITCHABLE


def _on_off_patch(device: DeviceName, on: bool) -> dict[str, Any] | None:
    if device.kind in ("light", "plug"):
        return {"on": on}
    if device.kind == "tv":
        return {"power": on}
    if device.kind == "thermostat":
        return {"mode": "auto" if on else "off"}
    return None


async def turn(act: Act, on: bool) -> Outcome:
    # Sentences that mean the room spoken in carry it as their area (Home Assistant's requires_context), so a
    # sentence without name or area ("turn off all the lights") means the whole home.
    whole = "name" not in act.rec.slots and "area" not in act.rec.slots
    targets = act.candidates(None, whole_home=whole)
    switchable = [d for d in targets if d.kind in _kinds(act.rec)]
    if not switchable:
        if targets and "name" in act.rec.slots:
            return act.fail("cannot", name=targets[0].name)
        return act.nothing("light" if act.rec.slots.get("domain") == "light" else "device")
    changed = []
    for device in switchable:
        patch = _on_off_patch(device, on)
        if patch is not None and await act.desired(device, patch):
            changed.append(device)
    if not changed:
        return act.refused_answer(switchable)
    return act.changed_answer("turned_on" if on else "turned_off", changed)


def _range(hub: Hub, device: DeviceName, key: str) -> tuple[float | None, float | None, str]:
    schema = hub.registry.model_of(device.id).properties.get(key)
    if schema is None:
        return None, None, ""
    return schema.minimum, schema.maximum, schema.unit or ""


async def light_set(act: Act) -> Outcome:
    lights = act.candidates({"light"})
    if not lights:
        return act.nothing("light")
    slots = act.rec.slots
    changed: list[DeviceName] = []
    if "brightness" in slots:
        level = max(0, min(100, round(float(slots["brightness"]))))
        for device in lights:
            if await act.desired(device, {"brightness": level, "on": level > 0}):
                changed.append(device)
        return act.changed_answer("brightness_set", changed, value=level) if changed else act.refused_answer(lights)
    kelvin = slots.get("temperature")
    color = slots.get("color")
    if color == "white":
        kelvin = 4000
    if isinstance(kelvin, int | float):
        for device in lights:
            low, high, _ = _range(act.hub, device, "color_temp_k")
            if low is None or high is None:
                continue
            value = int(max(low, min(high, float(kelvin))))
            if await act.desired(device, {"color_temp_k": value, "on": True}):
                changed.append(device)
        if changed:
            return act.changed_answer("white_set", changed, value=int(kelvin))
        return act.refused_answer(lights)
    names = join(act.lang, [d.name for d in lights])
    return act.fail("only_white", names=names, color=color or "")


async def climate_set(act: Act) -> Outcome:
    found = act.candidates({"thermostat"})
    if not found and "name" not in act.rec.slots:
        found = [d for d in act.slots.devices if d.kind == "thermostat"] if "area" not in act.rec.slots else []
    if not found:
        return act.nothing("thermostat")
    value = float(act.rec.slots["temperature"])
    changed = []
    for device in found:
        low, high, unit = _range(act.hub, device, "target_c")
        if low is not None and high is not None and not low <= value <= high:
            return act.fail("out_of_range", name=device.name, minimum=f"{low:g}", maximum=f"{high:g}", unit=unit)
        if await act.desired(device, {"target_c": int(value) if value.is_integer() else value}):
            changed.append(device)
    if not changed:
        return act.refused_answer(found)
    return act.changed_answer("temperature_set", changed, value=f"{value:g}")


def _media_targets(act: Act) -> list[DeviceName] | Outcome:
    found = act.candidates(MEDIA)
    if found:
        return found
    if "name" in act.rec.slots or "area" in act.rec.slots:
        return act.nothing("media player")
    chosen = act.one(MEDIA, "media player")
    return [chosen] if isinstance(chosen, DeviceName) else chosen


_MEDIA_COMMANDS = {
    # intent → (TV key, speaker action, phrase)
    "HassMediaPause": ("pause", "pause", "pause"),
    "HassMediaUnpause": ("play", None, "resume"),
    "HassMediaNext": ("ch_up", None, "next"),
    "HassMediaPrevious": ("ch_down", None, "previous"),
}


async def media(act: Act) -> Outcome:
    targets = _media_targets(act)
    if isinstance(targets, Outcome):
        return targets
    tv_key, speaker_action, phrase = _MEDIA_COMMANDS[act.rec.intent]
    what = act.say(phrase)
    last: Outcome | None = None
    for device in targets:
        if device.kind == "tv":
            last = await act.run_command(device, "key_press", {"key": tv_key}, what)
        elif speaker_action is not None:
            last = await act.run_command(device, speaker_action, None, what)
        elif len(targets) == 1:
            return act.fail("cannot", name=device.name)
    return last if last is not None else act.fail("cannot", name=targets[0].name)


async def _current_volume(act: Act, device: DeviceName) -> int:
    twin = await act.hub.twins.get(device.id)
    for source in (twin.reported, twin.desired):
        value = source.get("volume")
        if isinstance(value, int | float):
            return int(value)
    return 50


async def volume(act: Act) -> Outcome:
    targets = _media_targets(act)
    if isinstance(targets, Outcome):
        return targets
    slots, changed = act.rec.slots, []
    level = 0
    for device in targets:
        if act.rec.intent == "HassSetVolume":
            level = round(float(slots["volume_level"]))
        else:
            step = slots.get("volume_step")
            delta = 10 if step == "up" else -10 if step == "down" else round(float(step or 0))
            level = await _current_volume(act, device) + delta
        level = max(0, min(100, level))
        if await act.desired(device, {"volume": level}):
            changed.append(device)
    if not changed:
        return act.refused_answer(targets)
    return act.changed_answer("volume_set", changed, value=level)


async def mute(act: Act) -> Outcome:
    targets = _media_targets(act)
    if isinstance(targets, Outcome):
        return targets
    muted = act.rec.intent == "HassMediaPlayerMute"
    changed = [d for d in targets if await act.desired(d, {"muted": muted})]
    if not changed:
        return act.refused_answer(targets)
    return act.changed_answer("muted" if muted else "unmuted", changed)


async def channel(act: Act) -> Outcome:
    tv = act.one({"tv"}, "tv")
    if isinstance(tv, Outcome):
        return tv
    if act.rec.intent == "TosChannelStep":
        up = act.rec.slots.get("direction") != "down"
        what = act.say("channel_up" if up else "channel_down")
        return await act.run_command(tv, "key_press", {"key": "ch_up" if up else "ch_down"}, what)
    number = int(act.rec.slots["channel"])
    return await act.run_command(tv, "set_channel", {"channel": number}, act.say("channel", value=number))


async def launch(act: Act) -> Outcome:
    app_id = str(act.rec.slots.get("app") or act.rec.slots.get("game"))
    screen = act.one({"tv", "phone"} if "name" in act.rec.slots else {"tv"}, "tv")
    if isinstance(screen, Outcome):
        return screen
    what = act.say("launch", value=_app_name(app_id, act.lang))
    return await act.run_command(screen, "launch_app", {"app_id": app_id}, what)


def _app_name(app_id: str, language: str) -> str:
    from tosplus.services.voice.understanding.loader import app_catalogue

    for app in app_catalogue():
        if app["id"] == app_id:
            names = app["names"].get(language) or app["names"]["en"]
            return str(names[0])
    return app_id


async def scene(act: Act) -> Outcome:
    wanted = str(act.rec.slots["scene"])
    found = act.slots.scene(wanted)
    if not found or act.hub.scenes is None:
        return act.fail("no_scene", name=wanted)
    record = await act.hub.scenes.get(found[0].id)
    run: dict[str, Any] = await act.hub.scenes.run(record, "voice", act.principal)
    for result in run["results"]:
        act.done.append({"device_id": result["device_id"], "action": "scene", "status": result["status"], "detail": ""})
    outcome = act.say(f"scene_{run['outcome']}")
    return act.finish(act.say("scene_ran", name=record["name"], outcome=outcome), ok=run["outcome"] != "failed")


# -- timers, time -----------------------------------------------------------------------------------------------


def _seconds(slots: dict[str, Any], prefix: str = "") -> int:
    hours = float(slots.get(f"{prefix}hours") or 0)
    minutes = float(slots.get(f"{prefix}minutes") or 0)
    seconds = float(slots.get(f"{prefix}seconds") or 0)
    return round(hours * 3600 + minutes * 60 + seconds)


async def timer(act: Act) -> Outcome:
    timers = timers_of(act.hub)
    key = (act.home_id, act.principal.id)
    intent = act.rec.intent
    if intent == "HassStartTimer":
        seconds = max(1, min(24 * 3600, _seconds(act.rec.slots)))
        hub, principal, home_id = act.hub, act.principal, act.home_id

        def done(ended: Timer) -> None:
            timers.spawn(_timer_done(hub, principal, home_id, ended))

        timers.start(key, seconds, act.lang, act.device_id, done)
        return act.finish(act.say("timer_started", value=answers.duration(act.lang, seconds)))
    running = timers.of(key)
    if not running:
        return act.finish(act.say("timer_none"), ok=False)
    if intent == "HassTimerStatus":
        now = asyncio.get_running_loop().time()
        left = join(act.lang, [answers.duration(act.lang, t.left(now)) for t in running])
        return act.finish(act.say("timer_left", value=left))
    if intent == "HassCancelAllTimers":
        count = timers.cancel(key)
    else:  # the timer of that length ("cancel the 5 minute timer"), else the latest
        count = timers.cancel(key, _seconds(act.rec.slots, "start_") or running[-1].seconds, latest_only=True)
    return act.finish(act.say("timer_canceled", count=count))


async def _timer_done(hub: Hub, principal: Principal, home_id: str, ended: Timer) -> None:
    text = say(ended.language, "timer_done", value=answers.duration(ended.language, ended.seconds))
    device = ended.device_id
    if device and device in hub.registry.devices and "say" in hub.registry.model_of(device).actions:
        with contextlib.suppress(TosError):
            await hub.commands.send(device, "say", {"text": text, "language": ended.language}, timeout_s=5.0)
    await hub.people.audit.record(
        principal, "voice.timer_done", home_id=home_id, device_id=device, detail={"seconds": ended.seconds}
    )


async def clock(act: Act) -> Outcome:
    now = datetime.datetime.now().astimezone()
    if act.rec.intent == "HassGetCurrentTime":
        value = now.strftime("%H:%M") if act.lang == "zh-cn" else now.strftime("%I:%M %p").lstrip("0")
        return act.finish(act.say("time", value=value))
    value = f"{now.year}年{now.month}月{now.day}日" if act.lang == "zh-cn" else now.strftime("%A, %B %d, %Y")
    return act.finish(act.say("date", value=value))


async def nevermind(act: Act) -> Outcome:
    return act.finish(act.say("ok"))


# -- entry ------------------------------------------------------------------------------------------------------


def _handlers() -> dict[str, Any]:
    from tosplus.services.voice import payments, queries

    return {
        "HassTurnOn": lambda a: turn(a, True),
        "HassTurnOff": lambda a: turn(a, False),
        "HassLightSet": light_set,
        "HassClimateSetTemperature": climate_set,
        "HassClimateGetTemperature": queries.temperature,
        "HassGetState": queries.state,
        "TosGetValue": queries.value,
        "HassMediaPause": media,
        "HassMediaUnpause": media,
        "HassMediaNext": media,
        "HassMediaPrevious": media,
        "HassSetVolume": volume,
        "HassSetVolumeRelative": volume,
        "HassMediaPlayerMute": mute,
        "HassMediaPlayerUnmute": mute,
        "HassStartTimer": timer,
        "HassCancelTimer": timer,
        "HassCancelAllTimers": timer,
        "HassTimerStatus": timer,
        "HassGetCurrentTime": clock,
        "HassGetCurrentDate": clock,
        "HassNevermind": nevermind,
        "TosSetChannel": channel,
        "TosChannelStep": channel,
        "TosLaunchApp": launch,
        "TosPlayGame": launch,
        "TosRunScene": scene,
        "TosPay": payments.pay,
    }


def not_understood(language: str) -> Outcome:
    """The answer to a request nobody understood: what one can say instead; nothing is done."""
    return Outcome(say(language, "not_understood"), ok=False)


async def act(
    hub: Hub,
    principal: Principal,
    home_id: str,
    recognized: Recognized | None,
    *,
    slots: Slots | None = None,
    device_id: str | None = None,
    ip: str | None = None,
) -> Outcome:
    """Do what ``recognized`` asks in home ``home_id`` as ``principal``; ``None`` gets a helpful answer.
    ``device_id``: the device the request was spoken to (its room is meant when the sentence names none)."""
    if recognized is None:
        return not_understood("en")
    if slots is None:
        slots = await home_slots(hub, principal, home_id)
    area = None
    if device_id is not None:
        spoken_to = next((d for d in slots.devices if d.id == device_id), None)
        area = spoken_to.room if spoken_to else None
    handler = _handlers().get(recognized.intent)
    if handler is None:
        return not_understood(recognized.language)
    one = Act(hub, principal, home_id, recognized, slots, device_id, area, ip)
    outcome: Outcome = await handler(one)
    return outcome
