"""A simulated screen's session side: the TV that shows a pairing code, holds its players, obeys the remote
control, runs apps and reads game pads.

It joins the device SDK's pieces: the session connection (``ScreenLink``), optionally the mDNS announcement
(``ScreenAnnouncer``), and what a TV would draw — here the code as text and as a QR code, the players, its
power, volume and channel, its apps and the last game-pad frame of each player::

    async with SimScreen(tv_id, secret, "http://127.0.0.1:8080", announce=True, echo=True) as tv:
        shown = await tv.show_pairing()     # tv.screen_text == "1234 5678", tv.qr_svg: what the TV shows
        ...                                 # tv.power, tv.volume, tv.channel, tv.apps, tv.pads[slot]

With ``echo`` it answers each input frame with ``{"echo_seq", "t_sent"}`` to the player's phone, so the phone
can measure the round trip phone → hub → TV → hub → phone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tosplus.sdk.discovery import ScreenAnnouncer
from tosplus.sdk.pairing import CredentialStore, ShownCode
from tosplus.sdk.screen import ScreenLink

log = logging.getLogger(__name__)

APPS = ("youtube", "netflix", "tosplus.game", "radio")  # installed on the simulated TV


class SimScreen:
    def __init__(
        self,
        device_id: str,
        secret: str,
        hub: str,
        *,
        product: str = "smart-tv",
        name: str | None = None,
        announce: bool = False,
        interfaces: list[str] | None = None,
        max_players: int | None = None,
        credentials: CredentialStore | None = None,
        echo: bool = False,
        apps: tuple[str, ...] = APPS,
    ) -> None:
        self.device_id = device_id
        self.name = name or f"TV {device_id[:6]}"
        self.link = ScreenLink(device_id, secret, hub, max_players=max_players, credentials=credentials)
        self.announcer = (
            ScreenAnnouncer(
                device_id,
                product,
                discriminator=self.link.discriminator,
                name=self.name,
                hub=hub,
                interfaces=interfaces,
            )
            if announce
            else None
        )
        self.screen_text = ""  # what the TV shows about pairing now
        self.qr_svg = ""
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.echo = echo
        # what the TV is doing
        self.power = True
        self.volume = 20
        self.muted = False
        self.channel = 1
        self.keys: list[str] = []  # remote keys in the order they came
        self.typed = ""  # the last text typed on a phone
        self.apps: dict[str, str] = dict.fromkeys(apps, "stopped")
        self.pads: dict[int, dict[str, Any]] = {}  # slot -> its newest input frame
        self.frames = 0
        self.paused: set[int] = set()  # slots whose player is lost: the game waits for them
        self._echoes: set[asyncio.Task[None]] = set()
        self.link.on_code(self._show)
        self.link.on_controller(self._player)
        self.link.on_input(self._input)
        self.link.on_remote(self._remote)
        self.link.on_text(self._text)
        self.link.on_app(self._app)

    def _show(self, shown: ShownCode | None) -> None:
        if shown is None:
            self.screen_text, self.qr_svg = "", ""
            return
        self.screen_text, self.qr_svg = shown.text, shown.qr_svg()
        log.info("%s shows a pairing code", self.name)  # on its screen (screen_text, qr_svg), not in logs

    def _player(self, event: str, doc: dict[str, Any]) -> None:
        self.events.append((event, doc))
        slot = int(doc.get("slot", 0))
        if event == "controller.lost":
            self.paused.add(slot)
        elif event in ("controller.resumed", "controller.connected", "controller.left"):
            self.paused.discard(slot)
        log.info("%s: %s player %s (%s)", self.name, event, doc.get("slot"), doc.get("name"))

    def _input(self, frame: dict[str, Any]) -> None:
        self.frames += 1
        self.pads[int(frame["slot"])] = frame
        if self.echo:
            data = {"echo_seq": frame["seq"], "t_sent": frame["t_sent"]}
            task = asyncio.get_running_loop().create_task(self.link.send_to_controller(frame["session_id"], data))
            self._echoes.add(task)
            task.add_done_callback(self._echoed)

    def _echoed(self, task: asyncio.Task[None]) -> None:
        self._echoes.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the link dropped: the echo is lost, no more
            log.debug("%s: an echo was not sent", self.name)

    def _remote(self, doc: dict[str, Any]) -> None:
        key = str(doc.get("key"))
        self.keys.append(key)
        if key == "power":
            self.power = not self.power
        elif not self.power:
            return  # a TV in standby only wakes up
        elif key == "volume_up":
            self.volume, self.muted = min(100, self.volume + 1), False
        elif key == "volume_down":
            self.volume = max(0, self.volume - 1)
        elif key == "mute":
            self.muted = not self.muted
        elif key == "channel_up":
            self.channel += 1
        elif key == "channel_down":
            self.channel = max(1, self.channel - 1)
        log.info(
            "%s: remote %s (power %s, volume %s, channel %s)", self.name, key, self.power, self.volume, self.channel
        )

    def _text(self, doc: dict[str, Any]) -> None:
        self.typed = str(doc.get("text", ""))

    def _app(self, doc: dict[str, Any]) -> dict[str, Any]:
        app_id, op = str(doc.get("app_id")), doc.get("op")
        if app_id not in self.apps:
            return {"state": "not_installed"}
        if op == "launch":
            for other in self.apps:  # one app in the foreground, as on a real TV
                self.apps[other] = "stopped"
            self.apps[app_id] = "running"
            self.power = True
        elif op == "stop":
            self.apps[app_id] = "stopped"
        return {"state": self.apps[app_id]}

    @property
    def shown(self) -> ShownCode | None:
        return self.link.shown

    async def show_pairing(self) -> ShownCode:
        await self.link.wait_connected(10)
        return await self.link.open_pairing()

    async def start(self) -> SimScreen:
        await self.link.start()
        if self.announcer is not None:
            await self.announcer.start()
        return self

    async def close(self) -> None:
        if self.announcer is not None:
            await self.announcer.close()
        await self.link.close()

    async def __aenter__(self) -> SimScreen:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
