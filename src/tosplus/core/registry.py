"""Products and devices: the registry every other part asks "who is this and what may it say?".

The registry keeps every device's identity in memory (a few hundred bytes each; 100,000 devices is tens of
MB) so the ingest path and the broker's authentication never wait on the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core import bus as events
from tosplus.core.access import BrokerAccounts
from tosplus.core.bus import Bus, Event
from tosplus.core.ids import hash_secret, new_device_id, new_secret, now_ms, secret_matches
from tosplus.core.thing_model import ThingModel, parse_thing_model
from tosplus.errors import Conflict, InvalidInput, NotFound, Unauthorized
from tosplus.storage import tables as t

PRODUCT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
MAX_BULK = 10_000
_HISTORY_TABLES = (t.telemetry, t.telemetry_latest, t.events, t.commands, t.dead_letters)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    manufacturer: str
    model: ThingModel
    has_provisioning_key: bool
    builtin: bool
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "manufacturer": self.manufacturer,
            "thing_model": dict(self.model.document),
            "fleet_provisioning": self.has_provisioning_key,
            "builtin": self.builtin,
            "inactivity_timeout_s": self.model.inactivity_timeout_s,
            "retention_days": self.model.retention_days,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    product_id: str
    name: str
    labels: dict[str, str]
    enabled: bool
    has_credentials: bool
    created_at: int
    credentials_at: int


@dataclass(frozen=True, slots=True)
class NewCredentials:
    device: Device
    secret: str


class Registry:
    def __init__(self, engine: AsyncEngine, bus: Bus, accounts: BrokerAccounts) -> None:
        self.engine = engine
        self.bus = bus
        self.accounts = accounts
        self.products: dict[str, Product] = {}
        self.devices: dict[str, Device] = {}
        self._secret_hashes: dict[str, str | None] = {}
        self._provisioning_hashes: dict[str, str | None] = {}

    # ------------------------------------------------------------------ loading
    async def load(self) -> None:
        async with self.engine.connect() as conn:
            for row in (await conn.execute(sa.select(t.products))).mappings():
                self._remember_product(row)
            for row in (await conn.execute(sa.select(t.devices))).mappings():
                self._remember_device(row)

    def _remember_product(self, row: Any) -> Product:
        product = Product(
            id=row["id"],
            name=row["name"],
            manufacturer=row["manufacturer"],
            model=parse_thing_model(row["thing_model"]),
            has_provisioning_key=row["provisioning_key_hash"] is not None,
            builtin=bool(row["builtin"]),
            created_at=row["created_at"],
        )
        self.products[product.id] = product
        self._provisioning_hashes[product.id] = row["provisioning_key_hash"]
        return product

    def _remember_device(self, row: Any) -> Device:
        device = Device(
            id=row["id"],
            product_id=row["product_id"],
            name=row["name"],
            labels=dict(row["labels"] or {}),
            enabled=bool(row["enabled"]),
            has_credentials=row["secret_hash"] is not None,
            created_at=row["created_at"],
            credentials_at=row["credentials_at"],
        )
        self.devices[device.id] = device
        self._secret_hashes[device.id] = row["secret_hash"]
        return device

    async def refresh(self, *, device_ids: Sequence[str] = (), product_ids: Sequence[str] = ()) -> None:
        """Re-read some products and devices from the database (another process changed them)."""
        async with self.engine.connect() as conn:
            if product_ids:
                found = set()
                for row in (
                    await conn.execute(sa.select(t.products).where(t.products.c.id.in_(list(product_ids))))
                ).mappings():
                    self._remember_product(row)
                    found.add(row["id"])
                for gone in set(product_ids) - found:
                    self.products.pop(gone, None)
            for start in range(0, len(device_ids), 1000):
                chunk = list(device_ids[start : start + 1000])
                found = set()
                for row in (await conn.execute(sa.select(t.devices).where(t.devices.c.id.in_(chunk)))).mappings():
                    self._remember_device(row)
                    found.add(row["id"])
                for gone in set(chunk) - found:
                    self.devices.pop(gone, None)
                    self._secret_hashes.pop(gone, None)

    def _product_changed(self, product_id: str, action: str) -> None:
        self.bus.fire(Event(events.PRODUCT_LIFECYCLE, None, {"action": action, "product_id": product_id}, now_ms()))

    def _device_changed(self, device_id: str, action: str) -> None:
        self.bus.fire(Event(events.DEVICE_LIFECYCLE, device_id, {"action": action}, now_ms()))

    # ------------------------------------------------------------------ products
    def product(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise NotFound(f"product '{product_id}' does not exist") from None

    def model_of(self, device_id: str) -> ThingModel:
        return self.products[self.device(device_id).product_id].model

    async def create_product(
        self,
        *,
        product_id: str,
        name: str,
        manufacturer: str,
        thing_model: dict[str, Any],
        fleet_provisioning: bool = False,
        builtin: bool = False,
    ) -> tuple[Product, str | None]:
        """Register a product; returns it and, when fleet provisioning is on, its provisioning key (once)."""
        if not PRODUCT_ID.match(product_id):
            raise InvalidInput("product id must be 2-63 lowercase letters, digits or '-'")
        parse_thing_model(thing_model)  # refuse a bad model before anything is written
        if product_id in self.products:
            raise Conflict(f"product '{product_id}' already exists")
        key = new_secret() if fleet_provisioning else None
        row = {
            "id": product_id,
            "name": name,
            "manufacturer": manufacturer,
            "thing_model": thing_model,
            "provisioning_key_hash": hash_secret(key) if key else None,
            "builtin": builtin,
            "created_at": now_ms(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.products).values(**row))
        product = self._remember_product(row)
        self._product_changed(product_id, "created")
        return product, key

    async def replace_thing_model(self, product_id: str, thing_model: dict[str, Any]) -> Product:
        self.product(product_id)
        parse_thing_model(thing_model)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.products).where(t.products.c.id == product_id).values(thing_model=thing_model)
            )
            row = (await conn.execute(sa.select(t.products).where(t.products.c.id == product_id))).mappings().one()
        product = self._remember_product(row)
        self._product_changed(product_id, "updated")
        return product

    async def delete_product(self, product_id: str) -> None:
        self.product(product_id)
        if any(d.product_id == product_id for d in self.devices.values()):
            raise Conflict(f"product '{product_id}' still has devices; delete them first")
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.products).where(t.products.c.id == product_id))
        del self.products[product_id]
        self._provisioning_hashes.pop(product_id, None)
        self._product_changed(product_id, "deleted")

    # ------------------------------------------------------------------ devices
    def device(self, device_id: str) -> Device:
        try:
            return self.devices[device_id]
        except KeyError:
            raise NotFound(f"device '{device_id}' does not exist") from None

    def authenticate(self, device_id: str, secret: str) -> bool:
        """Are these the current credentials of an enabled device?"""
        device = self.devices.get(device_id)
        if device is None or not device.enabled:
            return False
        return secret_matches(secret, self._secret_hashes.get(device_id))

    def check_device_credentials(self, device_id: str, secret: str) -> Device:
        if not self.authenticate(device_id, secret):
            raise Unauthorized("unknown device, wrong secret, or device disabled")
        return self.devices[device_id]

    async def create_devices(
        self,
        product_id: str,
        specs: Sequence[tuple[str | None, str, dict[str, str]]],
    ) -> list[NewCredentials]:
        """Create devices from ``(id or None, name, labels)``; one transaction, one broker round."""
        self.product(product_id)
        if not specs:
            raise InvalidInput("nothing to create")
        if len(specs) > MAX_BULK:
            raise InvalidInput(f"at most {MAX_BULK} devices per call")
        now = now_ms()
        rows: list[dict[str, Any]] = []
        created: list[str] = []
        seen: set[str] = set()
        for wanted_id, name, labels in specs:
            device_id = wanted_id or new_device_id()
            if not DEVICE_ID.match(device_id):
                raise InvalidInput(f"device id '{device_id}' must be 3-64 letters, digits, '_', '.' or '-'")
            if device_id in self.devices or device_id in seen:
                raise Conflict(f"device '{device_id}' already exists")
            _check_labels(labels)
            seen.add(device_id)
            secret = new_secret()
            rows.append(
                {
                    "id": device_id,
                    "product_id": product_id,
                    "name": name or device_id,
                    "labels": labels,
                    "secret_hash": hash_secret(secret),
                    "enabled": True,
                    "created_at": now,
                    "credentials_at": now,
                    "online": False,
                    "dead_letter_count": 0,
                }
            )
            created.append(secret)
        twin_rows = [
            {
                "device_id": r["id"],
                "desired": {},
                "desired_meta": {},
                "desired_version": 0,
                "reported": {},
                "reported_meta": {},
                "reported_version": 0,
            }
            for r in rows
        ]
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.devices), rows)
            await conn.execute(sa.insert(t.twins), twin_rows)
        await self.accounts.upsert([(r["id"], s) for r, s in zip(rows, created, strict=True)])
        result = []
        for row, secret in zip(rows, created, strict=True):
            device = self._remember_device(row)
            result.append(NewCredentials(device, secret))
            self._device_changed(device.id, "created")
        return result

    async def provision(self, product_id: str, provisioning_key: str, serial: str) -> NewCredentials:
        """Fleet provisioning: a device holding its product's key registers itself, once per serial (again after
        its credentials were revoked)."""
        product = self.products.get(product_id)
        if product is None or not secret_matches(provisioning_key, self._provisioning_hashes.get(product_id)):
            raise Unauthorized("unknown product or wrong provisioning key")
        if not serial or len(serial) > 128:
            raise InvalidInput("serial must be 1-128 characters")
        for device in self.devices.values():
            if device.product_id == product_id and device.labels.get("serial") == serial:
                # A device whose credentials were revoked (reset, or unbound by its owner) provisions again
                # under the same id; one that holds credentials cannot be taken over by a second claimant.
                if device.has_credentials:
                    raise Conflict(f"a device with serial '{serial}' is already registered for {product_id}")
                return await self.rotate_credentials(device.id)
        (created,) = await self.create_devices(product_id, [(None, f"{product.name} {serial}", {"serial": serial})])
        return created

    async def rotate_credentials(self, device_id: str) -> NewCredentials:
        device = self.device(device_id)
        secret = new_secret()
        await self._set_secret_hash(device_id, hash_secret(secret))
        # The broker drops sessions that used the old secret; then the device's enabled state is restored.
        await self.accounts.set_secret(device_id, secret)
        await self.accounts.set_enabled(device_id, device.enabled)
        return NewCredentials(self.devices[device.id], secret)

    async def revoke_credentials(self, device_id: str) -> Device:
        self.device(device_id)
        await self._set_secret_hash(device_id, None)
        await self.accounts.revoke(device_id)
        return self.devices[device_id]

    async def _set_secret_hash(self, device_id: str, digest: str | None) -> None:
        now = now_ms()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.devices).where(t.devices.c.id == device_id).values(secret_hash=digest, credentials_at=now)
            )
        self._secret_hashes[device_id] = digest
        self.devices[device_id] = replace(
            self.devices[device_id], has_credentials=digest is not None, credentials_at=now
        )

    async def update_device(
        self,
        device_id: str,
        *,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        enabled: bool | None = None,
    ) -> Device:
        device = self.device(device_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if labels is not None:
            _check_labels(labels)
            values["labels"] = labels
        if enabled is not None:
            values["enabled"] = enabled
        if values:
            async with self.engine.begin() as conn:
                await conn.execute(sa.update(t.devices).where(t.devices.c.id == device_id).values(**values))
            self.devices[device_id] = device = replace(device, **values)
        if enabled is not None:
            await self.accounts.set_enabled(device_id, enabled)
        if values:
            self._device_changed(device_id, "updated")
        return device

    async def erase_history(self, device_id: str) -> None:
        """Delete what the device reported and was sent (telemetry, events, commands, dead letters)."""
        self.device(device_id)
        async with self.engine.begin() as conn:
            for table in _HISTORY_TABLES:
                await conn.execute(sa.delete(table).where(table.c.device_id == device_id))

    async def delete_device(self, device_id: str) -> None:
        """Delete a device and every piece of its data."""
        self.device(device_id)
        async with self.engine.begin() as conn:
            for table in (*_HISTORY_TABLES, t.twins):
                await conn.execute(sa.delete(table).where(table.c.device_id == device_id))
            await conn.execute(sa.delete(t.devices).where(t.devices.c.id == device_id))
        del self.devices[device_id]
        self._secret_hashes.pop(device_id, None)
        await self.accounts.remove([device_id])
        self._device_changed(device_id, "deleted")


def _check_labels(labels: dict[str, str]) -> None:
    if not isinstance(labels, dict) or len(labels) > 32:
        raise InvalidInput("labels must be an object of at most 32 entries")
    for key, value in labels.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 256:
            raise InvalidInput("labels must map names (≤64 chars) to strings (≤256 chars)")
