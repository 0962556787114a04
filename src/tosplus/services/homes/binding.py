"""Binding a device to a home with the code it shows, and releasing it again.

A code is 8 characters of Crockford base32 (40 bits), single-use, and stored only as its SHA-256. Screen
devices ask for a fresh code that lives 10 minutes; sticker codes are issued at the factory and live as long as
the maker chooses. A device bound to a home accepts no new code until its owner unbinds it; unbinding revokes
its credentials, empties its twin and erases its history, so the next owner starts clean.

:class:`DeviceCodes` is the store of such codes (issue, claim once); payment activation codes
(services/payments/activation.py) live in it too, with their own kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import segno
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import hash_secret, now_ms
from tosplus.core.registry import Registry
from tosplus.core.twins import Twins
from tosplus.errors import Conflict, InvalidInput, NotFound
from tosplus.services.homes import codes
from tosplus.services.homes import tables as t
from tosplus.services.homes.homes import Homes
from tosplus.services.homes.limits import FailureLimiter

CODE_LENGTH = 8
SCREEN_TTL_S = 600
MAX_STICKER_DAYS = 5 * 365
URI_PREFIX = "tosplus:bind:"
BINDING_KINDS = ("screen", "sticker")


@dataclass(frozen=True, slots=True)
class IssuedCode:
    device_id: str
    code: str  # grouped for people: XXXX-XXXX
    kind: str
    expires_at: int
    uri_prefix: str = URI_PREFIX

    @property
    def uri(self) -> str:
        return self.uri_prefix + self.code.replace("-", "")

    def to_json(self, *, with_qr: bool = False) -> dict[str, Any]:
        """With ``with_qr``, also the QR code of the uri as an SVG (for a sticker or a screen); ~1 KB."""
        doc: dict[str, Any] = {
            "device_id": self.device_id,
            "code": self.code,
            "kind": self.kind,
            "expires_at": self.expires_at,
            "uri": self.uri,
        }
        if with_qr:
            doc["qr_svg"] = segno.make(self.uri, error="m").svg_inline(scale=4, border=2)
        return doc


class CodeRefused(NotFound):
    """A code that cannot be claimed; ``reason`` is ``unknown`` (never issued, mistyped, or of another kind),
    ``used`` or ``expired``; ``device_id`` the device it stood for, when it did."""

    def __init__(self, detail: str, reason: str, device_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.device_id = device_id


class DeviceCodes:
    """Short codes that stand for one device for a while and can be claimed once, in ``binding_codes``: binding
    codes (kinds ``screen`` and ``sticker``) and payment activation codes (``payment``). Only the SHA-256 of a
    code is stored; a claim marks it used with a conditional update, so of two people typing the same code at
    once only one wins."""

    def __init__(self, engine: AsyncEngine, registry: Registry) -> None:
        self.engine = engine
        self.registry = registry

    async def issue(self, device_id: str, kind: str, valid_s: int, uri_prefix: str = URI_PREFIX) -> IssuedCode:
        code, moment = codes.new_code(CODE_LENGTH), now_ms()
        async with self.engine.begin() as conn:
            # Expired codes of this device go now, so the table holds only what could still be used.
            await conn.execute(
                sa.delete(t.binding_codes).where(
                    t.binding_codes.c.device_id == device_id, t.binding_codes.c.expires_at < moment
                )
            )
            await conn.execute(
                sa.insert(t.binding_codes).values(
                    code_hash=hash_secret(code),
                    device_id=device_id,
                    kind=kind,
                    created_at=moment,
                    expires_at=moment + valid_s * 1000,
                )
            )
        return IssuedCode(device_id, codes.grouped(code), kind, moment + valid_s * 1000, uri_prefix)

    async def claim(self, code: str, kinds: Collection[str], check: Callable[[str], None] | None = None) -> str:
        """Use ``code`` (one of ``kinds``) once; the device it stands for. ``check(device_id)`` runs before the
        code is marked used: what it raises leaves the code usable. CodeRefused says why a code is no good."""
        digest, moment = hash_secret(codes.normalise(code)), now_ms()
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(t.binding_codes).where(t.binding_codes.c.code_hash == digest))).first()
            if row is None or row.kind not in kinds or row.device_id not in self.registry.devices:
                raise CodeRefused("no device is waiting with this code (it may be mistyped)", "unknown")
            device_id = str(row.device_id)
            if row.used_at is not None:
                raise CodeRefused("this code has been used already; ask the device for a new one", "used", device_id)
            if row.expires_at <= moment:
                raise CodeRefused("this code has expired; ask the device for a new one", "expired", device_id)
            if check is not None:
                check(device_id)
            won = await conn.execute(
                sa.update(t.binding_codes)
                .where(t.binding_codes.c.code_hash == digest, t.binding_codes.c.used_at.is_(None))
                .values(used_at=moment)
            )
            if won.rowcount != 1:
                raise CodeRefused("this code has just been used", "used", device_id)
        return device_id

    async def forget(self, device_id: str) -> None:
        """Every code of the device, of every kind, goes (the device left its home)."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.binding_codes).where(t.binding_codes.c.device_id == device_id))


class Binding:
    def __init__(self, engine: AsyncEngine, registry: Registry, twins: Twins, homes: Homes) -> None:
        self.engine = engine
        self.registry = registry
        self.twins = twins
        self.homes = homes
        self.codes = DeviceCodes(engine, registry)
        self.misses = FailureLimiter(10, 600, "binding codes")
        # Other services' clean-up when a device leaves its home (payments deletes its payment token). They run
        # before the device's credentials are revoked, so they can still tell a connected device.
        self.on_unbind: list[Callable[[str], Awaitable[None]]] = []

    async def issue(self, device_id: str, *, kind: str = "screen", valid_s: int = SCREEN_TTL_S) -> IssuedCode:
        self.registry.device(device_id)
        if device_id in self.homes.device_home:
            raise Conflict("this device belongs to a home; its owner must unbind it before it can be bound again")
        if kind not in ("screen", "sticker"):
            raise InvalidInput("kind must be screen or sticker")
        if not 60 <= valid_s <= MAX_STICKER_DAYS * 86400:
            raise InvalidInput(f"a code must be valid for 1 minute to {MAX_STICKER_DAYS} days")
        return await self.codes.issue(device_id, kind, valid_s)

    async def claim(self, home_id: str, code: str, room_id: str | None, by: str, client: str) -> str:
        """Bind the device waiting with ``code`` to the home; its id. Misses count against the caller."""
        self.homes.home(home_id)
        if room_id is not None:
            self.homes.room(home_id, room_id)
        self.misses.check(by, client)

        def unbound(device_id: str) -> None:
            if device_id in self.homes.device_home:
                raise Conflict("this device belongs to a home already; its owner must unbind it first")

        try:
            device_id = await self.codes.claim(code, BINDING_KINDS, unbound)
        except CodeRefused:
            self.misses.failed(by, client)
            # One answer for every reason: which codes exist, or existed, is nobody's business here.
            raise NotFound("no device is waiting with this code (it may be mistyped, expired or used)") from None
        await self.homes.place_device(home_id, device_id, room_id, by)
        return device_id

    async def unbind(self, device_id: str) -> str | None:
        """Release the device from its home; the home it was in."""
        home_id = await self.homes.remove_device(device_id)
        await self.codes.forget(device_id)
        for hook in self.on_unbind:
            await hook(device_id)
        await self.registry.revoke_credentials(device_id)
        await self.twins.reset(device_id)
        await self.registry.erase_history(device_id)
        return home_id
