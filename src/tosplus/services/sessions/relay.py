"""The relay between a controller and its screen: game-pad input at up to 60 Hz, remote keys, text, app launch,
the phone's own messages to its screen, and the screen's messages back to its players (docs/sessions.md,
"The relay").

The path of an input frame is attribute reads only: the controller's connection handler holds its
:class:`Controller`, which holds its ``Screen``, which holds the screen's link; no lookup, no database, no broker,
no await. Input is *newest wins*: a frame whose ``seq`` is not above the last one relayed is dropped, and a frame
the screen's socket has not taken yet is replaced by a newer one of the same controller (``WsLink.send_latest``)
rather than queued behind it. Whatever is refused or dropped is counted on the controller (``InputStats``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tosplus.core.ids import new_id
from tosplus.errors import Conflict, Forbidden, InvalidInput, TosError

if TYPE_CHECKING:
    from tosplus.core.tokens import Principal
    from tosplus.services.sessions.sessions import Controller, Screen, Sessions

INPUT_RATE = 120  # frames per second and session; above this they are dropped (a phone sends at most 60)
INPUT_MAX_BYTES = 1024  # an input frame's JSON text
MAX_AXES = 8
BUTTONS_MAX = 0xFFFFFFFF
TEXT_MAX = 500
APP_TIMEOUT_S = 5.0  # the HTTP app API waits this long for the screen's app.state
APP_PENDING_S = 30.0  # a phone's app request unanswered this long is forgotten
TO_SCREEN_RATE = 20  # phone -> screen messages a second and session: reports and signalling, not input
REMOTE_KEYS = frozenset(
    {
        "power",
        "volume_up",
        "volume_down",
        "mute",
        "channel_up",
        "channel_down",
        "up",
        "down",
        "left",
        "right",
        "ok",
        "back",
        "home",
        "menu",
        "play_pause",
    }
)
APP_OPS = frozenset({"launch", "stop", "status"})
APP_STATES = frozenset({"running", "stopped", "not_installed"})


class ScreenTimeout(TosError):
    status = 504
    title = "The screen did not answer"


@dataclass(slots=True)
class InputStats:
    relayed: int = 0
    coalesced: int = 0  # replaced by a newer frame before the screen's socket took it
    stale: int = 0  # seq not above the last relayed one
    flooded: int = 0  # over INPUT_RATE in one second
    malformed: int = 0
    screen_away: int = 0  # the screen was not connected

    def to_json(self) -> dict[str, int]:
        return {
            "relayed": self.relayed,
            "coalesced": self.coalesced,
            "stale": self.stale,
            "flooded": self.flooded,
            "malformed": self.malformed,
            "screen_away": self.screen_away,
        }


def input_problem(doc: dict[str, Any]) -> str | None:
    """Why an input frame is not valid, or ``None``."""
    seq, t_sent, buttons, axes = doc.get("seq"), doc.get("t_sent"), doc.get("buttons"), doc.get("axes", ())
    if type(seq) is not int or seq < 0:
        return "seq must be a non-negative integer"
    if not isinstance(t_sent, int | float) or isinstance(t_sent, bool) or not math.isfinite(t_sent):
        return "t_sent must be a number (the phone's clock in ms)"
    if type(buttons) is not int or not 0 <= buttons <= BUTTONS_MAX:
        return "buttons must be a 32-bit bit mask (0 to 4294967295)"
    if type(axes) is not list or len(axes) > MAX_AXES:
        return f"axes must be a list of at most {MAX_AXES} numbers"
    for value in axes:
        if type(value) not in (int, float) or not -1.0 <= value <= 1.0:
            return "each axis must be a number from -1 to 1"
    return None


@dataclass(slots=True)
class _AppRequest:
    controller: Controller | None  # the phone that asked, or None for the HTTP API
    future: asyncio.Future[dict[str, Any]] | None
    deadline: float


class Relay:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.input_rate = INPUT_RATE
        self.app_timeout_s = APP_TIMEOUT_S
        self._apps: dict[tuple[str, str], _AppRequest] = {}  # (device id, request id) -> who asked
        self.to_screen_rate = TO_SCREEN_RATE
        self._to_screen_windows: dict[str, list[float]] = {}  # session id -> [this second's start, count]

    # -- controller -> screen -------------------------------------------------------------------------------

    def input(self, controller: Controller, doc: dict[str, Any], size: int) -> None:
        """One game-pad frame: checked, newest wins, at most ``input_rate`` a second, coalesced on the way."""
        link = controller.link
        stats = controller.stats
        if link is None:
            return
        problem = "an input frame is at most 1024 bytes" if size > INPUT_MAX_BYTES else input_problem(doc)
        if problem is not None:
            stats.malformed += 1
            link.send({"type": "error", "for": "input", "detail": problem})
            return
        seq = doc["seq"]
        if seq <= controller.last_seq:
            stats.stale += 1
            return
        now = controller.last_heard  # just set from the clock by the caller
        if now - controller.window_start >= 1.0:
            controller.window_start, controller.window_count = now, 0
        controller.window_count += 1
        if controller.window_count > self.input_rate:
            stats.flooded += 1
            if controller.window_count == self.input_rate + 1:  # once a second, not once a frame
                detail = f"more than {self.input_rate} input frames a second: the rest of this second is dropped"
                link.send({"type": "error", "for": "input", "detail": detail})
            return
        controller.last_seq = seq
        screen_link = controller.screen.link
        if screen_link is None:
            stats.screen_away += 1
            return
        frame = {
            "type": "input",
            "session_id": controller.id,
            "slot": controller.slot,
            "seq": seq,
            "t_sent": doc["t_sent"],
            "t_hub": time.time() * 1000,
            "buttons": doc["buttons"],
            "axes": doc.get("axes", []),
        }
        stats.relayed += 1
        if screen_link.send_latest(controller.latest, frame):
            stats.coalesced += 1

    def remote(self, controller: Controller, doc: dict[str, Any]) -> None:
        key = doc.get("key")
        if not isinstance(key, str) or key not in REMOTE_KEYS:
            self._refuse(controller, "remote", f"key must be one of {', '.join(sorted(REMOTE_KEYS))}")
            return
        self._to_screen(controller, "remote", {"key": key})

    def text(self, controller: Controller, doc: dict[str, Any]) -> None:
        text = doc.get("text")
        if not isinstance(text, str) or len(text) > TEXT_MAX:
            self._refuse(controller, "text", f"text must be a string of at most {TEXT_MAX} characters")
            return
        self._to_screen(controller, "text", {"text": text})

    def app(self, controller: Controller, doc: dict[str, Any]) -> None:
        try:
            op, app_id, params, request_id = _app_request(doc)
        except ValueError as exc:
            self._refuse(controller, "app", str(exc))
            return
        screen = controller.screen
        if screen.link is None:
            self._refuse(controller, "app", "the screen is not connected")
            return
        key = (screen.device_id, request_id)
        if key in self._apps:
            self._refuse(controller, "app", "a request with this request_id is still waiting for the screen")
            return
        self._apps[key] = _AppRequest(controller, None, self.sessions.clock() + APP_PENDING_S)
        self._to_screen(controller, "app", {"op": op, "app_id": app_id, "params": params, "request_id": request_id})
        if op == "launch":
            self._audit_launch(screen, app_id, None, controller)

    def to_screen(self, controller: Controller, doc: dict[str, Any]) -> None:
        """The phone's own message to its screen (a latency report, a direct path's signalling): relayed as
        ``from_controller``, at most ``to_screen_rate`` a second; the 8 KB message limit was applied on reading."""
        data = doc.get("data")
        if not isinstance(data, dict):
            self._refuse(controller, "to_screen", "data must be an object")
            return
        window = self._to_screen_windows.get(controller.id)
        now = controller.last_heard  # just set from the clock by the caller
        if window is None or now - window[0] >= 1.0:
            window = self._to_screen_windows[controller.id] = [now, 0]
        window[1] += 1
        if window[1] > self.to_screen_rate:
            if window[1] == self.to_screen_rate + 1:  # once a second, not once a message
                detail = f"more than {self.to_screen_rate} to_screen messages a second: the rest are dropped"
                self._refuse(controller, "to_screen", detail)
            return
        self._to_screen(controller, "from_controller", {"data": data}, refuse_as="to_screen")

    def _to_screen(self, controller: Controller, kind: str, body: dict[str, Any], refuse_as: str = "") -> None:
        screen_link = controller.screen.link
        if screen_link is None:
            self._refuse(controller, refuse_as or kind, "the screen is not connected")
            return
        screen_link.send({"type": kind, "session_id": controller.id, "slot": controller.slot, **body})

    @staticmethod
    def _refuse(controller: Controller, kind: str, detail: str) -> None:
        if controller.link is not None:
            controller.link.send({"type": "error", "for": kind, "detail": detail})

    # -- screen -> controllers ------------------------------------------------------------------------------

    def to_controller(self, screen: Screen, doc: dict[str, Any]) -> None:
        session_id, data = doc.get("session_id"), doc.get("data")
        if not isinstance(data, dict):
            screen.tell({"type": "error", "for": "to_controller", "detail": "data must be an object"})
            return
        controller = self.sessions.controllers.get(str(session_id))
        if controller is None or controller.screen is not screen:
            detail = f"no controller session '{session_id}' here"
            screen.tell({"type": "error", "for": "to_controller", "detail": detail})
            return
        if controller.link is not None:  # a lost player misses it; the game resends state on controller.resumed
            controller.link.send({"type": "from_screen", "data": data})

    def broadcast(self, screen: Screen, doc: dict[str, Any]) -> None:
        data = doc.get("data")
        if not isinstance(data, dict):
            screen.tell({"type": "error", "for": "broadcast", "detail": "data must be an object"})
            return
        message = {"type": "from_screen", "data": data}
        for controller in screen.slots.values():
            if controller.link is not None:
                controller.link.send(message)

    def app_state(self, screen: Screen, doc: dict[str, Any]) -> None:
        """The screen's answer to an app request, to whoever asked (a phone, or an HTTP request waiting)."""
        state = doc.get("state")
        if not isinstance(state, str) or state not in APP_STATES:
            detail = f"state must be one of {', '.join(sorted(APP_STATES))}"
            screen.tell({"type": "error", "for": "app.state", "detail": detail})
            return
        answer = {
            "type": "app.state",
            "request_id": doc.get("request_id"),
            "app_id": str(doc.get("app_id", "")),
            "state": state,
        }
        if isinstance(doc.get("detail"), str):
            answer["detail"] = doc["detail"]
        asked = self._apps.pop((screen.device_id, str(doc.get("request_id"))), None)
        if asked is None:  # a change of the screen's own (or a late answer): every player may show it
            for controller in screen.slots.values():
                if controller.link is not None:
                    controller.link.send(answer)
            return
        if asked.future is not None and not asked.future.done():
            asked.future.set_result(answer)
        elif asked.controller is not None and asked.controller.link is not None:
            asked.controller.link.send(answer)

    # -- the HTTP app API -----------------------------------------------------------------------------------

    async def app_over_http(
        self, caller: Principal, device_id: str, op: str, app_id: str, params: dict[str, Any], ip: str | None
    ) -> dict[str, Any]:
        """Launch, stop or ask about an app on a screen for a person who may control it; the screen's answer."""
        if not caller.user_id:
            raise Forbidden("apps on a screen are started by the people of its home")
        refused = self.sessions.refusal(caller.user_id, device_id)
        if refused is not None:
            raise refused
        try:
            _, app_id, params, request_id = _app_request({"op": op, "app_id": app_id, "params": params})
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        screen = self.sessions.screens.get(device_id)
        if screen is None or screen.link is None:
            raise Conflict("the screen is not connected to the hub")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        key = (device_id, request_id)
        self._apps[key] = _AppRequest(None, future, self.sessions.clock() + self.app_timeout_s)
        screen.tell(
            {
                "type": "app",
                "op": op,
                "app_id": app_id,
                "params": params,
                "request_id": request_id,
                "session_id": None,
                "slot": None,
            }
        )
        if op == "launch":
            self._audit_launch(screen, app_id, caller, None, ip)
        try:
            answer = await asyncio.wait_for(future, self.app_timeout_s)
        except TimeoutError:
            raise ScreenTimeout(f"the screen did not answer within {self.app_timeout_s:g} s") from None
        finally:
            self._apps.pop(key, None)
        return {k: v for k, v in answer.items() if k != "type"}

    def sweep(self, now: float) -> None:
        for key in [k for k, r in self._apps.items() if r.future is None and r.deadline < now]:
            del self._apps[key]
        live = self.sessions.controllers
        for session_id in [s for s in self._to_screen_windows if s not in live]:
            del self._to_screen_windows[session_id]

    def _audit_launch(
        self,
        screen: Screen,
        app_id: str,
        caller: Principal | None,
        controller: Controller | None,
        ip: str | None = None,
    ) -> None:
        sessions = self.sessions
        home_id = sessions.hub.people.homes.device_home.get(screen.device_id)
        detail: dict[str, Any] = {"app_id": app_id}
        if controller is not None:
            detail.update(session_id=controller.id, user_id=controller.user_id, via="session")
        else:
            detail["via"] = "api"
        sessions.spawn(
            sessions.hub.people.audit.record(
                caller,
                "screen.app_launched",
                home_id=home_id,
                device_id=screen.device_id,
                detail=detail,
                ip=ip,
                actor_label=controller.user_name if controller is not None else None,
            )
        )


def _app_request(doc: dict[str, Any]) -> tuple[str, str, dict[str, Any], str]:
    op, app_id, params = doc.get("op"), doc.get("app_id"), doc.get("params", {})
    request_id = doc.get("request_id") or new_id("req")
    if not isinstance(op, str) or op not in APP_OPS:
        raise ValueError("op must be launch, stop or status")
    if not isinstance(app_id, str) or not 1 <= len(app_id) <= 100:
        raise ValueError("app_id must be a string of 1 to 100 characters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    if not isinstance(request_id, str) or len(request_id) > 64:
        raise ValueError("request_id must be a string of at most 64 characters")
    return op, app_id, params, request_id
