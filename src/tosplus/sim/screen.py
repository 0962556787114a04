"""A simulated screen's session side: the TV that shows a pairing code and holds its players.

It joins the device SDK's pieces: the session connection (``ScreenLink``), optionally the mDNS announcement
(``ScreenAnnouncer``), and what a TV would draw — here the code as text and as a QR code, and the players::

    async with SimScreen(tv_id, secret, "http://127.0.0.1:8080", announce=True) as tv:
        shown = await tv.show_pairing()     # tv.screen_text == "1234 5678", tv.qr_svg: what the TV shows
"""

from __future__ import annotations

import logging
from typing import Any

from tosplus.sdk.discovery import ScreenAnnouncer
from tosplus.sdk.pairing import CredentialStore, ShownCode
from tosplus.sdk.screen import ScreenLink

log = logging.getLogger(__name__)


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
        self.link.on_code(self._show)
        self.link.on_controller(self._player)

    def _show(self, shown: ShownCode | None) -> None:
        if shown is None:
            self.screen_text, self.qr_svg = "", ""
            return
        self.screen_text, self.qr_svg = shown.text, shown.qr_svg()
        log.info("%s shows a pairing code", self.name)  # on its screen (screen_text, qr_svg), not in logs

    def _player(self, event: str, doc: dict[str, Any]) -> None:
        self.events.append((event, doc))
        log.info("%s: %s player %s (%s)", self.name, event, doc.get("slot"), doc.get("name"))

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
