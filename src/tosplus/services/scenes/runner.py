"""Running a scene: apply its actions to the devices and say, per device, what really happened.

A scene touches several devices at once, and people judge it by the lights they see. So the runner never
reports a silent partial success: each action ends as ``applied`` (the device reported the values or answered
the command), ``offline`` (kept and applied when the device returns), ``refused`` (the model, the hub or the
device said no, or the device did something else) or ``timeout`` (no answer in time), with words saying why.

It goes through the same services as the API (``Twins.patch_desired``, ``Commands.send``), so validation,
versions, the retained desired state and the command history are the same as for a person using the API.

Decisions:

- Every action starts at once and shares one deadline, so a run takes at most ``timeout_s`` (plus a little
  for the hub's own writes), however many devices the scene has.
- A device may pass through intermediate values (a dimmer ramping 80 → 50 → 20), so a different reported
  value is not final: the runner waits until the deadline for the reported state to match, and only then calls
  a mismatch ``refused``. A device that cannot do it therefore costs the whole timeout.
- Scene commands are not persistent unless the action asks for it: "blink now" should not happen hours later.
  A non-persistent command to an offline device is ``refused`` (the commands service does not send it); a
  persistent one is ``offline`` (queued until the device returns or the command expires).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import orjson

from tosplus.core import bus as events
from tosplus.core.bus import Event
from tosplus.core.commands import CANCELED, FAILED, MAX_TIMEOUT_S, QUEUED, SUCCEEDED, Command
from tosplus.core.twins import Twin
from tosplus.errors import InvalidInput, NotFound, TosError, VersionMismatch

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)
Status = Literal["applied", "offline", "refused", "timeout"]
Outcome = Literal["applied", "partial", "failed"]
# The hub's own writes after the deadline (a command's TIMED_OUT row) must fit in this.
SLACK_S = 0.5
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    params: Any = None
    persistent: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    """``{"device_id", "desired": {...}}`` or ``{"device_id", "command": {"name", "params"[, "persistent"]}}``."""

    device_id: str
    desired: Mapping[str, Any] | None = None
    command: CommandSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not self.device_id:
            raise InvalidInput("an action's device_id must be a non-empty string")
        if (self.desired is None) == (self.command is None):
            raise InvalidInput(f"the action for '{self.device_id}' must have exactly one of 'desired' and 'command'")
        if self.desired is not None:
            desired = self.desired
            if not isinstance(desired, Mapping) or not desired or not all(isinstance(k, str) for k in desired):
                raise InvalidInput(f"the desired state for '{self.device_id}' must be a non-empty object")
            # Read-only from here on: results and retries must see what the scene asked for.
            object.__setattr__(self, "desired", MappingProxyType(dict(desired)))

    @classmethod
    def parse(cls, doc: Any, where: str = "action") -> Action:
        """An action from its JSON shape; InvalidInput (with ``where`` in the words) when it is not one."""
        if isinstance(doc, Action):
            return doc
        if not isinstance(doc, Mapping):
            raise InvalidInput(f'{where} must be {{"device_id", "desired": {{...}}}} or {{"device_id", "command"}}')
        _only(doc, {"device_id", "desired", "command"}, where)
        command = doc.get("command")
        if command is not None:
            if not isinstance(command, Mapping):
                raise InvalidInput(f'{where}: command must be {{"name": ..., "params": {{...}}}}')
            _only(command, {"name", "params", "persistent"}, f"{where}.command")
            if not isinstance(command.get("name"), str) or not command["name"]:
                raise InvalidInput(f"{where}: command name must be a non-empty string")
            if not isinstance(command.get("persistent", False), bool):
                raise InvalidInput(f"{where}: command persistent must be true or false")
            command = CommandSpec(command["name"], command.get("params"), command.get("persistent", False))
        try:
            return cls(doc.get("device_id", ""), doc.get("desired"), command)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.detail}") from None


@dataclass(frozen=True, slots=True)
class ActionResult:
    device_id: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"device_id": self.device_id, "status": self.status, "detail": self.detail}


def outcome(results: Sequence[ActionResult]) -> Outcome:
    """All applied → applied (also for no actions: nothing failed); none applied → failed; else partial."""
    applied = sum(r.status == "applied" for r in results)
    return "applied" if applied == len(results) else "failed" if applied == 0 else "partial"


async def run_actions(
    hub: Hub, actions: Sequence[Action | Mapping[str, Any]], *, timeout_s: float = 5.0
) -> list[ActionResult]:
    """Apply every action concurrently; one result per action, in the order of ``actions``.

    A malformed action raises InvalidInput before any device is touched (a half-run scene is what we avoid).
    """
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise InvalidInput(f"timeout_s must be between 0 and {MAX_TIMEOUT_S:g}")
    parsed = [Action.parse(a, f"actions[{i}]") for i, a in enumerate(actions)]
    _check_conflicts(parsed)
    deadline = asyncio.get_running_loop().time() + timeout_s
    return list(await asyncio.gather(*(_run_one(hub, a, deadline, timeout_s) for a in parsed)))


async def _run_one(hub: Hub, action: Action, deadline: float, timeout_s: float) -> ActionResult:
    """One action, with every failure turned into a result: a raised error would hide the others' results."""
    device_id = action.device_id
    try:
        device = hub.registry.devices.get(device_id)
        if device is None:
            raise NotFound("the device no longer exists")
        if not device.enabled:
            return ActionResult(device_id, "refused", "the device is disabled; nothing was sent")
        async with asyncio.timeout_at(deadline + SLACK_S):
            if action.desired is not None:
                return await _apply_desired(hub, device_id, action.desired, deadline, timeout_s)
            assert action.command is not None
            return await _send_command(hub, device_id, action.command, deadline, timeout_s)
    except NotFound:
        return ActionResult(device_id, "refused", "the device no longer exists")
    except InvalidInput as exc:  # the thing model said no before anything reached the device
        return ActionResult(device_id, "refused", f"{exc.detail}; nothing was sent to the device")
    except TosError as exc:
        return ActionResult(device_id, "refused", exc.detail)
    except TimeoutError:
        return ActionResult(device_id, "timeout", f"the hub did not finish within {timeout_s:g} s")
    except Exception:
        log.exception("scene action for %s failed", device_id)
        return ActionResult(device_id, "refused", "the hub could not do it (internal error, see the hub log)")


@dataclass
class _Watch:
    """What the bus tells us about one device while we wait for it to apply the desired state."""

    device_id: str
    targets: dict[str, Any]
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    # (value, updated) of each target key when the patch was stored; None until then.
    baseline: dict[str, tuple[Any, Any]] | None = None
    current: dict[str, Any] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)  # keys the device reported after the patch
    ended: ActionResult | None = None  # deleted, gone offline or overridden meanwhile

    def on_event(self, event: Event) -> None:
        if event.device_id != self.device_id or self.baseline is None:
            return  # events before the patch was stored say nothing about it
        data = event.data
        if event.type == events.DEVICE_LIFECYCLE and data.get("action") == "deleted":
            self.ended = ActionResult(self.device_id, "refused", "the device no longer exists")
        elif event.type == events.PRESENCE and not data.get("online", True):
            why = f"went offline at {_clock(event.ts)} before reporting it; {_KEPT}"
            self.ended = ActionResult(self.device_id, "offline", why)
        elif event.type == events.TWIN_CHANGED:
            side = data.get("side")
            if side != "reported":  # "desired", or "both" when the twin is reset
                state = data["desired"]["state"]
                changed = next((k for k, v in self.targets.items() if state.get(k, _MISSING) != v), None)
                if changed is not None:
                    other = f"set to {_json(state[changed])}" if changed in state else "removed"
                    why = f"desired {changed} was {other} by another change meanwhile"
                    self.ended = ActionResult(self.device_id, "refused", why)
            if side != "desired":
                state, updated = data["reported"]["state"], data["reported"]["updated"]
                for key in self.targets:
                    now = (state.get(key, _MISSING), updated.get(key))
                    if now != self.baseline[key]:
                        self.fresh.add(key)
                    self.current[key] = now[0]
        self.woken.set()

    def matched(self) -> bool:
        return all(self.current.get(k, _MISSING) == v for k, v in self.targets.items())


_KEPT = "kept as desired state, applied when it returns"


async def _apply_desired(
    hub: Hub, device_id: str, desired: Mapping[str, Any], deadline: float, timeout_s: float
) -> ActionResult:
    # A null removes a desired property: the device has nothing to do for it, so nothing to wait for.
    watch = _Watch(device_id, {k: v for k, v in desired.items() if v is not None})
    # Subscribe before patching: a fast device may report before patch_desired returns to us.
    unsubscribe = [
        hub.bus.listen(kind, watch.on_event) for kind in (events.TWIN_CHANGED, events.PRESENCE, events.DEVICE_LIFECYCLE)
    ]
    try:
        twin = await _patch(hub, device_id, desired)
        # No await since patch_desired returned: this snapshot is exactly the twin our patch produced.
        watch.baseline = {k: (twin.reported.get(k, _MISSING), twin.reported_meta.get(k)) for k in watch.targets}
        watch.current = {k: twin.reported.get(k, _MISSING) for k in watch.targets}
        if not watch.targets:
            return ActionResult(device_id, "applied", f"desired {_join(list(desired))} removed")
        if watch.matched():  # already so (the check that closes the race with a report before the patch)
            return ActionResult(device_id, "applied", f"{_values(watch.targets)} reported")
        if not hub.presence.is_online(device_id):
            return ActionResult(device_id, "offline", f"{_offline(hub, device_id)}; {_KEPT}")
        loop = asyncio.get_running_loop()
        while watch.ended is None and not watch.matched():
            watch.woken.clear()
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await watch.woken.wait()
            except TimeoutError:
                break
        if watch.ended is not None:
            return watch.ended
        if watch.matched():
            return ActionResult(device_id, "applied", f"{_values(watch.targets)} reported")
        # Deadline: a key reported otherwise after the patch is what the device really did.
        wrong = [k for k in sorted(watch.fresh) if watch.current[k] != watch.targets[k]]
        if wrong:
            said = "; ".join(f"{k} {_shown(watch.current[k])}, not {_json(watch.targets[k])}" for k in wrong)
            return ActionResult(device_id, "refused", f"device reported {said}")
        if not watch.fresh:
            return ActionResult(device_id, "timeout", f"no answer within {timeout_s:g} s")
        got = _values({k: v for k, v in watch.targets.items() if k in watch.fresh})
        missing = _join([k for k in watch.targets if k not in watch.fresh])
        return ActionResult(device_id, "timeout", f"{got} reported; no report of {missing} within {timeout_s:g} s")
    finally:
        for remove in unsubscribe:
            remove()


async def _send_command(hub: Hub, device_id: str, spec: CommandSpec, deadline: float, timeout_s: float) -> ActionResult:
    """Through the commands service, as ``POST /devices/{id}/commands`` does; its timer ends at our deadline."""
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.05)
    command: Command = await hub.commands.send(
        device_id, spec.name, spec.params, timeout_s=remaining, persistent=spec.persistent, wait=True
    )
    if command.state == SUCCEEDED:
        answer = "" if command.result is None else f"; device answered {_json(command.result)}"
        return ActionResult(device_id, "applied", f"{spec.name} done{answer}")
    if command.state == QUEUED:
        until = f" (until {_clock(command.expires_at)})" if command.expires_at else ""
        queued = f"{spec.name} is queued and sent when it returns{until}"
        return ActionResult(device_id, "offline", f"{_offline(hub, device_id)}; {queued}")
    if command.state == FAILED and command.sent_at is None:  # the service did not send it
        if not hub.presence.is_online(device_id):
            why = "only a persistent command waits for the device"
            return ActionResult(device_id, "refused", f"{_offline(hub, device_id)}; {spec.name} was not sent ({why})")
        return ActionResult(device_id, "refused", f"{spec.name} was not sent: {command.error}")
    if command.state == FAILED:
        return ActionResult(device_id, "refused", f"device answered: {command.error}")
    if command.state == CANCELED:
        return ActionResult(device_id, "refused", f"{spec.name} was canceled before the device answered")
    # TIMED_OUT, EXPIRED (or anything not final): the device did not do it in time.
    return ActionResult(device_id, "timeout", f"no answer within {timeout_s:g} s")


async def _patch(hub: Hub, device_id: str, desired: Mapping[str, Any]) -> Twin:
    for _ in range(2):
        try:
            return await hub.twins.patch_desired(device_id, desired)
        except VersionMismatch:  # another hub process wrote first; a patch merges, so trying again is right
            pass
    return await hub.twins.patch_desired(device_id, desired)


def _check_conflicts(actions: Sequence[Action]) -> None:
    """Two actions setting one property of one device to different values cannot both be applied."""
    seen: dict[tuple[str, str], Any] = {}
    for action in actions:
        for key, value in (action.desired or {}).items():
            if seen.setdefault((action.device_id, key), value) != value:
                raise InvalidInput(f"two actions set {key} of '{action.device_id}' to different values")


def _only(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise InvalidInput(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _shown(value: Any) -> str:
    return "removed" if value is _MISSING else _json(value)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _values(values: Mapping[str, Any]) -> str:
    return _join([f"{k} {_json(v)}" for k, v in values.items()])


def _clock(ms: int) -> str:
    """14:02 UTC today, else with the date: the hub does not know the home's time zone here."""
    at = time.gmtime(ms / 1000)
    today = time.gmtime()[:3] == at[:3]
    return time.strftime("%H:%M UTC" if today else "%Y-%m-%d %H:%M UTC", at)


def _offline(hub: Hub, device_id: str) -> str:
    since = hub.presence.state(device_id).since
    return f"offline since {_clock(since)}" if since else "offline (never connected)"
