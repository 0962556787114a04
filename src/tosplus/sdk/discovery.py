"""Finding screens on the local network with mDNS/DNS-SD (the ``zeroconf`` package).

A screen announces ``<device id>._tosplus._tcp.local.`` with TXT records ``id`` (device id), ``product``,
``d`` (its pairing discriminator: 12 bits, random per boot, as Matter's), ``v`` (protocol version) and, when it
knows it, ``hub`` (the hub's base URL)::

    async with ScreenAnnouncer(device_id, "smart-tv", discriminator=link.discriminator, name="Living room TV"):
        ...

A phone (or any SDK program) lists the screens nearby::

    for screen in await browse_screens(timeout_s=2):
        print(screen.name, screen.device_id, screen.discriminator, screen.addresses)

Where mDNS does not reach (another network, multicast blocked), ``GET /api/v1/screens`` on the hub lists the
screens of the person's homes instead (docs/sessions.md).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SERVICE_TYPE = "_tosplus._tcp.local."
TXT_VERSION = "1"


def new_discriminator() -> int:
    """A fresh 12-bit pairing discriminator: random per boot, announced over mDNS and told to the hub."""
    return secrets.randbelow(4096)


@dataclass(frozen=True, slots=True)
class NearbyScreen:
    device_id: str
    product: str
    discriminator: int | None
    name: str
    addresses: tuple[str, ...]
    port: int
    hub: str | None
    instance: str


def _zeroconf(interfaces: Sequence[str] | None) -> Any:
    from zeroconf import InterfaceChoice, IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    if interfaces:
        return AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
    return AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)


def _local_addresses() -> list[str]:
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                found.append(ip.ip)
    return found or ["127.0.0.1"]


class ScreenAnnouncer:
    """Announce one screen while the ``async with`` block runs (or between ``start()`` and ``close()``)."""

    def __init__(
        self,
        device_id: str,
        product: str,
        *,
        discriminator: int,
        name: str | None = None,
        port: int = 0,
        hub: str | None = None,
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] | None = None,
    ) -> None:
        self.device_id = device_id
        self.product = product
        self.discriminator = discriminator & 0xFFF
        self.name = name or device_id
        self.port = port
        self.hub = hub
        self.interfaces = list(interfaces) if interfaces else None
        self.addresses = list(addresses) if addresses else None
        self._zc: Any = None
        self._info: Any = None

    @property
    def instance(self) -> str:
        return f"{self.device_id}.{SERVICE_TYPE}"

    def properties(self) -> dict[str, str]:
        txt = {"id": self.device_id, "product": self.product, "d": str(self.discriminator), "v": TXT_VERSION}
        txt["name"] = self.name[:63]
        if self.hub:
            txt["hub"] = self.hub
        return txt

    async def start(self) -> ScreenAnnouncer:
        from zeroconf.asyncio import AsyncServiceInfo

        addresses = self.addresses or (self.interfaces if self.interfaces else _local_addresses())
        self._zc = _zeroconf(self.interfaces)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.instance,
            addresses=[socket.inet_aton(a) for a in addresses],
            port=self.port,
            properties=self.properties(),
            server=f"tosplus-{self.device_id}.local.",
        )
        try:
            await self._zc.async_register_service(self._info)
        except BaseException:
            await self._zc.async_close()
            self._zc = None
            raise
        return self

    async def close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is not None:
            try:
                await zc.async_unregister_service(self._info)
            finally:
                await zc.async_close()

    async def __aenter__(self) -> ScreenAnnouncer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _screen(info: Any) -> NearbyScreen | None:
    props = {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (info.properties or {}).items()
    }
    device_id = props.get("id")
    if not device_id:
        return None
    d = props.get("d")
    return NearbyScreen(
        device_id=device_id,
        product=props.get("product") or "",
        discriminator=int(d) if isinstance(d, str) and d.isdigit() else None,
        name=props.get("name") or device_id,
        addresses=tuple(info.parsed_addresses()),
        port=int(info.port or 0),
        hub=props.get("hub"),
        instance=info.name,
    )


async def browse_screens(
    timeout_s: float = 2.0, *, interfaces: Sequence[str] | None = None, product: str | None = None
) -> list[NearbyScreen]:
    """The screens that answer within ``timeout_s`` seconds (sorted by name), optionally of one product."""
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

    zc = _zeroconf(interfaces)
    names: set[str] = set()

    def handler(**kwargs: Any) -> None:
        if kwargs["state_change"] in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.add(kwargs["name"])

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[handler])
    found: dict[str, NearbyScreen] = {}
    resolved: set[str] = set()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            for name in sorted(names - resolved):
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if await info.async_request(zc.zeroconf, 1000):
                    resolved.add(name)
                    screen = _screen(info)
                    if screen is not None and (product is None or screen.product == product):
                        found[name] = screen
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.sleep(min(0.1, left))
    finally:
        await browser.async_cancel()
        await zc.async_close()
    return sorted(found.values(), key=lambda s: (s.name, s.device_id))


__all__ = ["SERVICE_TYPE", "NearbyScreen", "ScreenAnnouncer", "browse_screens", "new_discriminator"]
