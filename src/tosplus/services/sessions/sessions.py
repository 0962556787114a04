"""Live controller ↔ screen sessions, in memory: screens with their connection and player slots, controllers
(a person's phone or watch) in a slot, keep-alive, resume after a drop, close, kick.

Everything a later input relay needs is one or two attribute reads away: a controller's connection handler
holds its :class:`Controller`, which holds its :class:`Screen`, which holds the screen's :class:`Link` — no
lookup on the path of a frame. By id, ``Sessions.controllers[session_id]`` and ``Sessions.screens[device_id]``.

Life of a controller session: opened by a successful pairing (``pairing.py``) in the lowest free slot, waiting
for its WebSocket; ``connected`` while it is attached; ``lost`` when the WebSocket closes or is silent longer
than ``silence_s``: the slot is kept ``resume_grace_s`` for a resume with the session's resume token, then the
session ends. The screen is told of every change (``controller.joined``, ``.lost``, ``.resumed``, ``.left``) and
each controller of the screen's presence (``screen.online`` / ``screen.offline``). A screen that stays away
longer than the grace period ends its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tosplus.core import bus as events
from tosplus.core.bus import Event
from tosplus.core.ids import hash_secret, new_id, now_ms, secret_matches
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound, TosError
from tosplus.services.homes.homes import GUEST
from tosplus.services.sessions.links import Latest
from tosplus.services.sessions.pairing import Pairings, Window
from tosplus.services.sessions.relay import InputStats, Relay
from tosplus.services.sessions.store import SessionStore

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)

MAX_PLAYERS_LIMIT = 32
KEEPALIVE_S = 5.0  # how often both sides should send a ping
SILENCE_S = 15.0  # a side not heard from for this long is lost
RESUME_GRACE_S = 60.0  # a lost controller (or screen) keeps its slots this long

# WebSocket close codes
CLOSE_ENDED = 4000  # closed, kicked, or the session timed out
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_REPLACED = 4409  # another connection took this session (or screen) over
CLOSE_SILENT = 4408  # no keep-alive (or the side could not keep up with what it was sent)


class Link(Protocol):
    """One side's live connection. ``send`` never blocks (it queues); ``close`` ends the connection."""

    def send(self, doc: dict[str, Any]) -> None: ...
    def send_latest(self, latest: Latest, doc: dict[str, Any]) -> bool: ...
    def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False, slots=True)
class Controller:
    id: str
    screen: Screen
    slot: int
    user_id: str
    user_name: str
    name: str
    home_id: str
    guest: bool
    resume_hash: str
    credential_id: str | None
    opened_at: int
    link: Link | None = None
    last_heard: float = 0.0
    lost_since: float | None = None  # monotonic; None while connected
    # the input relay's state (relay.py): newest seq relayed, this second's frame count, the pending frame
    last_seq: int = -1
    window_start: float = 0.0
    window_count: int = 0
    latest: Latest = field(default_factory=Latest)
    stats: InputStats = field(default_factory=InputStats)

    @property
    def state(self) -> str:
        return "connected" if self.link is not None else "lost"

    def view(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "device_id": self.screen.device_id,
            "slot": self.slot,
            "user_id": self.user_id,
            "user_name": self.user_name,
            "name": self.name,
            "guest": self.guest,
            "credential_id": self.credential_id,
            "state": self.state,
            "opened_at": self.opened_at,
            "screen_online": self.screen.link is not None,
        }


@dataclass(eq=False, slots=True)
class Screen:
    device_id: str
    max_players: int
    discriminator: int | None = None
    link: Link | None = None
    credentials_at: int = 0
    last_heard: float = 0.0
    offline_since: float | None = None
    slots: dict[int, Controller] = field(default_factory=dict)
    window: Window | None = None

    def free_slot(self) -> int | None:
        for slot in range(1, self.max_players + 1):
            if slot not in self.slots:
                return slot
        return None

    def tell(self, doc: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.send(doc)

    def view(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "online": self.link is not None,
            "max_players": self.max_players,
            "players": len(self.slots),
            "pairing_open": self.window is not None,
            "discriminator": self.discriminator,
            "controllers": [c.view() for _, c in sorted(self.slots.items())],
        }


class Sessions:
    def __init__(self, hub: Hub, *, max_players: int = 8) -> None:
        self.hub = hub
        self.store = SessionStore(hub.engine)
        self.max_players = max_players
        self.screens: dict[str, Screen] = {}
        self.controllers: dict[str, Controller] = {}
        self.pairings = Pairings(self)
        self.relay = Relay(self)
        self.keepalive_s = KEEPALIVE_S
        self.silence_s = SILENCE_S
        self.resume_grace_s = RESUME_GRACE_S
        self.clock: Callable[[], float] = time.monotonic
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def load(self) -> None:
        await self.store.load()
        self.hub.bus.listen(events.DEVICE_LIFECYCLE, self._on_device)
        self.hub.people.binding.on_unbind.append(self.on_unbind)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
        for controller in list(self.controllers.values()):
            if controller.link is not None:
                controller.link.close(CLOSE_ENDED, "the hub is stopping")
        for screen in self.screens.values():
            if screen.link is not None:
                screen.link.close(CLOSE_ENDED, "the hub is stopping")

    # -- who may control a screen ---------------------------------------------------------------------------

    def refusal(self, user_id: str, device_id: str) -> TosError | None:
        """Why this person may not control this screen now, or ``None`` when they may."""
        homes = self.hub.people.homes
        home_id = homes.device_home.get(device_id)
        member = homes.membership(home_id, user_id) if home_id else None
        if home_id is None or member is None or not member.allows(device_id):
            return NotFound(f"no device '{device_id}'")
        device = self.hub.registry.devices.get(device_id)
        if device is None or not self.hub.registry.products[device.product_id].model.screen:
            return InvalidInput("this device has no screen to pair with")
        if member.role == GUEST and not self.store.guests_may_control.get(home_id, False):
            return Forbidden("this home does not let guests control its screens (an owner can allow it)")
        return None

    # -- screens --------------------------------------------------------------------------------------------

    def attach_screen(
        self, device_id: str, link: Link, *, discriminator: int | None, max_players: int | None
    ) -> Screen:
        """The screen's connection is up (a newer one replaces an older one)."""
        device = self.hub.registry.device(device_id)
        if not self.hub.registry.products[device.product_id].model.screen:
            raise InvalidInput("only devices with a screen hold sessions")
        screen = self.screens.get(device_id)
        if screen is None:
            screen = self.screens[device_id] = Screen(device_id, self.max_players)
        if screen.link is not None and screen.link is not link:
            old = screen.link
            screen.link = None
            old.close(CLOSE_REPLACED, "another connection of this screen took over")
            self.pairings.close_window(screen, "replaced", tell=False)
        screen.link, screen.discriminator = link, discriminator
        if max_players is not None:
            self.set_max_players(screen, max_players)
        screen.credentials_at = device.credentials_at
        screen.last_heard, screen.offline_since = self.clock(), None
        for controller in screen.slots.values():
            controller.latest = Latest()  # a frame left pending on the old connection must not block the new one
            if controller.link is not None:
                controller.link.send({"type": "screen.online", "device_id": device_id})
        self._ensure_sweeper()
        return screen

    def set_max_players(self, screen: Screen, value: int) -> None:
        if not 1 <= value <= MAX_PLAYERS_LIMIT:
            raise InvalidInput(f"max_players must be 1 to {MAX_PLAYERS_LIMIT}")
        screen.max_players = value  # players already in a higher slot stay; new ones are refused until it fits

    def detach_screen(self, screen: Screen, link: Link, reason: str = "disconnected") -> None:
        if screen.link is not link:
            return
        screen.link, screen.offline_since = None, self.clock()
        self.pairings.close_window(screen, reason, tell=False)
        self.pairings.screen_gone(screen)
        for controller in screen.slots.values():
            if controller.link is not None:
                controller.link.send({"type": "screen.offline", "device_id": screen.device_id})

    def screen_heard(self, screen: Screen) -> None:
        screen.last_heard = self.clock()

    def screen_message(self, screen: Screen, doc: dict[str, Any]) -> None:
        """A message from the screen (after its hello)."""
        self.screen_heard(screen)
        kind = doc.get("type")
        if kind == "to_controller":
            self.relay.to_controller(screen, doc)
        elif kind == "broadcast":
            self.relay.broadcast(screen, doc)
        elif kind == "app.state":
            self.relay.app_state(screen, doc)
        elif kind == "ping":
            screen.tell({"type": "pong", "t": doc.get("t"), "server_t": now_ms()})
        elif kind == "pairing.open":
            self.pairings.open_window(screen, doc.get("expires_in_s"))
        elif kind == "pairing.close":
            self.pairings.close_window(screen, "closed_by_screen", tell=True)
        elif kind == "pair.answer":
            self.pairings.on_answer(screen, doc)
        elif kind == "pair.verdict":
            self.pairings.on_verdict(screen, doc)
        elif kind == "kick":
            self.kick(screen, str(doc.get("session_id", "")), forget=bool(doc.get("forget", False)))
        elif kind == "list":
            screen.tell({"type": "controllers", "items": screen.view()["controllers"]})
        elif kind == "config":
            try:
                self.set_max_players(screen, int(doc.get("max_players", screen.max_players)))
            except (TosError, TypeError, ValueError) as exc:
                screen.tell({"type": "error", "for": "config", "detail": str(exc)})
            else:
                screen.tell({"type": "config", "max_players": screen.max_players})
        else:
            screen.tell({"type": "error", "for": str(kind), "detail": "unknown message type"})

    # -- controllers ----------------------------------------------------------------------------------------

    def open(
        self,
        screen: Screen,
        *,
        user_id: str,
        user_name: str,
        name: str,
        home_id: str,
        guest: bool,
        credential_id: str | None,
    ) -> tuple[Controller, str]:
        """A new session in the lowest free slot; the resume token is returned here only."""
        slot = screen.free_slot()
        if slot is None:
            raise Conflict(f"the game on this screen is full ({screen.max_players} players)")
        token = secrets.token_urlsafe(32)
        controller = Controller(
            id=new_id("ses"),
            screen=screen,
            slot=slot,
            user_id=user_id,
            user_name=user_name,
            name=name,
            home_id=home_id,
            guest=guest,
            resume_hash=hash_secret(token),
            credential_id=credential_id,
            opened_at=now_ms(),
            lost_since=self.clock(),  # until its WebSocket attaches
        )
        screen.slots[slot] = controller
        self.controllers[controller.id] = controller
        screen.tell({"type": "controller.joined", **controller.view()})
        self._ensure_sweeper()
        return controller, token

    def attach(self, session_id: str, user_id: str, resume_token: str, link: Link) -> Controller:
        """A controller's WebSocket is up, for a new session or to resume one after a drop."""
        controller = self.controllers.get(session_id)
        if (
            controller is None
            or controller.user_id != user_id
            or not secret_matches(resume_token, controller.resume_hash)
        ):
            raise NotFound("no such session (it ended, or the resume token is wrong): pair again")
        refused = self.refusal(user_id, controller.screen.device_id)
        if refused is not None:
            self.end(controller, "not_allowed")
            raise refused
        resumed = controller.last_heard > 0  # it was connected before
        if controller.link is not None:
            old = controller.link
            controller.link = None
            old.close(CLOSE_REPLACED, "this session was resumed on another connection")
        controller.link, controller.lost_since, controller.last_heard = link, None, self.clock()
        controller.last_seq = -1  # a new connection may count its input frames afresh
        event = "controller.resumed" if resumed else "controller.connected"
        controller.screen.tell({"type": event, **controller.view()})
        return controller

    def heard(self, controller: Controller) -> None:
        controller.last_heard = self.clock()

    def controller_message(self, controller: Controller, doc: dict[str, Any], size: int = 0) -> None:
        """A message from an attached controller (``size``: its JSON text's length)."""
        controller.last_heard = self.clock()
        link = controller.link
        if link is None:
            return
        kind = doc.get("type")
        if kind == "input":  # first: 60 times a second per player
            self.relay.input(controller, doc, size)
        elif kind == "remote":
            self.relay.remote(controller, doc)
        elif kind == "text":
            self.relay.text(controller, doc)
        elif kind == "app":
            self.relay.app(controller, doc)
        elif kind == "to_screen":
            self.relay.to_screen(controller, doc)
        elif kind == "ping":
            link.send({"type": "pong", "t": doc.get("t"), "server_t": now_ms()})
        elif kind == "status":
            link.send({"type": "status", "session": controller.view(), "input": controller.stats.to_json()})
        elif kind == "close":
            self.end(controller, "closed")
        else:
            link.send({"type": "error", "for": str(kind), "detail": "unknown message type"})

    def detach(self, controller: Controller, link: Link, reason: str = "disconnected") -> None:
        """The controller's connection dropped: the slot is held for a resume."""
        if controller.link is not link or self.controllers.get(controller.id) is not controller:
            return
        controller.link, controller.lost_since = None, self.clock()
        controller.screen.tell({"type": "controller.lost", "reason": reason, **controller.view()})

    def end(self, controller: Controller, reason: str, *, code: int = CLOSE_ENDED) -> None:
        """The session is over: its slot is free and both sides are told."""
        if self.controllers.pop(controller.id, None) is None:
            return
        screen = controller.screen
        if screen.slots.get(controller.slot) is controller:
            del screen.slots[controller.slot]
        link, controller.link = controller.link, None
        if link is not None:
            link.send({"type": "closed", "reason": reason, "session_id": controller.id})
            link.close(code, reason)
        screen.tell({"type": "controller.left", "reason": reason, **controller.view()})

    def kick(self, screen: Screen, session_id: str, *, forget: bool = False) -> None:
        controller = self.controllers.get(session_id)
        if controller is None or controller.screen is not screen:
            screen.tell({"type": "error", "for": "kick", "detail": f"no controller session '{session_id}' here"})
            return
        if controller.link is not None:
            controller.link.send({"type": "kicked", "session_id": session_id})
        self.end(controller, "kicked")
        if forget and controller.credential_id:
            self._spawn(self.forget_credentials([controller.credential_id]))
        self._spawn(
            self.hub.people.audit.record(
                None,
                "session.kicked",
                home_id=controller.home_id,
                device_id=screen.device_id,
                detail={"session_id": session_id, "user_id": controller.user_id, "forget": forget},
                actor_label="screen",
            )
        )

    def of_user(self, user_id: str) -> list[Controller]:
        return [c for c in self.controllers.values() if c.user_id == user_id]

    # -- settings and credentials ---------------------------------------------------------------------------

    async def set_guests_may_control(self, home_id: str, value: bool, by: str | None) -> None:
        await self.store.set_guests_may_control(home_id, value, by)
        if not value:
            for controller in list(self.controllers.values()):
                if controller.home_id == home_id and controller.guest:
                    self.end(controller, "not_allowed", code=4403)

    async def forget_credentials(self, ids: list[str]) -> None:
        """Credentials removed: the hub forgets them and tells their screens to forget the secrets."""
        gone = [self.store.credentials[i] for i in ids if i in self.store.credentials]
        await self.store.remove_credentials([c.id for c in gone])
        for credential in gone:
            screen = self.screens.get(credential.device_id)
            if screen is not None:
                screen.tell({"type": "credential.revoked", "credential_id": credential.id})

    async def on_unbind(self, device_id: str) -> None:
        """The screen leaves its home: its sessions end and its controllers must pair anew with a code."""
        self._drop_device(device_id, "unbound")
        await self.forget_credentials([c.id for c in self.store.of_device(device_id)])

    def _on_device(self, event: Event) -> None:
        if event.device_id and event.data.get("action") == "deleted":
            self._drop_device(event.device_id, "deleted")
            for credential in self.store.of_device(event.device_id):  # the rows went with the device
                self.store.credentials.pop(credential.id, None)

    def _drop_device(self, device_id: str, reason: str) -> None:
        screen = self.screens.pop(device_id, None)
        if screen is None:
            return
        for controller in list(screen.slots.values()):
            self.end(controller, reason)
        self.pairings.close_window(screen, reason, tell=True)
        self.pairings.screen_gone(screen)
        if screen.link is not None:
            screen.link.close(CLOSE_FORBIDDEN, f"the device was {reason}")

    # -- keeping it tidy ------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Silent sides become lost, lost ones past the grace period end, rights that ended end sessions."""
        now = self.clock()
        registry = self.hub.registry
        for screen in list(self.screens.values()):
            device = registry.devices.get(screen.device_id)
            if screen.link is not None and (
                device is None
                or not device.enabled
                or not device.has_credentials
                or device.credentials_at != screen.credentials_at
            ):
                link = screen.link
                self.detach_screen(screen, link, "credentials_changed")
                link.close(CLOSE_UNAUTHORIZED, "the device's credentials changed")
            elif screen.link is not None and now - screen.last_heard > self.silence_s:
                link = screen.link
                self.detach_screen(screen, link, "silent")
                link.close(CLOSE_SILENT, "no keep-alive")
            gone = screen.link is None and screen.offline_since is not None
            if gone and now - (screen.offline_since or now) > self.resume_grace_s:
                for controller in list(screen.slots.values()):
                    self.end(controller, "screen_gone")
                del self.screens[screen.device_id]
            self.pairings.sweep(screen, now)
        rights: dict[tuple[str, str], TosError | None] = {}  # one check per person and screen, not per player
        for controller in list(self.controllers.values()):
            key = (controller.user_id, controller.screen.device_id)
            if key not in rights:
                rights[key] = self.refusal(*key)
            refused = rights[key]
            if refused is not None:
                self.end(controller, "not_allowed", code=4403)
            elif controller.link is not None and now - controller.last_heard > self.silence_s:
                link = controller.link
                self.detach(controller, link, "silent")
                link.close(CLOSE_SILENT, "no keep-alive")
            elif controller.lost_since is not None and now - controller.lost_since > self.resume_grace_s:
                self.end(controller, "timeout")
        self.relay.sweep(now)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="sessions-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                self.sweep()
            except Exception:
                log.exception("sessions sweep failed; will try again")

    def spawn(self, work: Any) -> None:
        """Run ``work`` in the background, kept referenced until it ends."""
        self._spawn(work)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
