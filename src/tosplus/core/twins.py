"""Device twins: desired state (set by people and apps), reported state (set by the device), and the delta.

Each side has its own version and per-property timestamps. Desired changes use optimistic concurrency: the
caller may name the version it read, and a stale version is refused (412) instead of overwriting someone
else's change. Every desired change is published retained to ``twin/desired``, so a device that was offline
gets the newest desired state as soon as it subscribes, and the delta to ``twin/delta``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.core import bus as events
from tosplus.core.bus import Bus, Event
from tosplus.core.ids import now_ms
from tosplus.core.publisher import Publisher
from tosplus.core.registry import Registry
from tosplus.errors import InvalidInput, NotFound, VersionMismatch
from tosplus.gateway import topics
from tosplus.storage import tables as t


@dataclass(slots=True)
class Twin:
    device_id: str
    desired: dict[str, Any] = field(default_factory=dict)
    desired_meta: dict[str, int] = field(default_factory=dict)
    desired_version: int = 0
    reported: dict[str, Any] = field(default_factory=dict)
    reported_meta: dict[str, int] = field(default_factory=dict)
    reported_version: int = 0

    @property
    def delta(self) -> dict[str, Any]:
        missing = object()
        return {k: v for k, v in self.desired.items() if self.reported.get(k, missing) != v}

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "desired": {"version": self.desired_version, "state": self.desired, "updated": self.desired_meta},
            "reported": {"version": self.reported_version, "state": self.reported, "updated": self.reported_meta},
            "delta": self.delta,
        }

    def copy(self) -> Twin:
        return Twin(
            self.device_id,
            dict(self.desired),
            dict(self.desired_meta),
            self.desired_version,
            dict(self.reported),
            dict(self.reported_meta),
            self.reported_version,
        )


class Twins:
    def __init__(self, engine: AsyncEngine, registry: Registry, bus: Bus, publisher: Publisher) -> None:
        self.engine = engine
        self.registry = registry
        self.bus = bus
        self.publisher = publisher
        self._cache: dict[str, Twin] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        bus.listen(events.DEVICE_LIFECYCLE, self._forget_deleted)

    def _forget_deleted(self, event: Event) -> None:
        if event.data.get("action") == "deleted" and event.device_id:
            self._cache.pop(event.device_id, None)
            self._locks.pop(event.device_id, None)
            # Clear the retained desired message so a new device with this id starts clean.
            self.publisher.publish(topics.desired(event.device_id), b"", qos=1, retain=True)

    async def get(self, device_id: str, conn: AsyncConnection | None = None) -> Twin:
        self.registry.device(device_id)
        twin = self._cache.get(device_id)
        if twin is not None:
            return twin
        if conn is None:
            async with self.engine.connect() as own:
                return await self.get(device_id, own)
        row = (await conn.execute(sa.select(t.twins).where(t.twins.c.device_id == device_id))).mappings().first()
        if row is None:
            raise NotFound(f"device '{device_id}' has no twin")
        twin = Twin(
            device_id,
            dict(row["desired"]),
            dict(row["desired_meta"]),
            row["desired_version"],
            dict(row["reported"]),
            dict(row["reported_meta"]),
            row["reported_version"],
        )
        self._cache[device_id] = twin
        return twin

    async def get_many(self, device_ids: list[str]) -> list[Twin]:
        """Twins of several devices, reading the ones not cached in one query."""
        missing = [d for d in device_ids if d not in self._cache and d in self.registry.devices]
        if missing:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(sa.select(t.twins).where(t.twins.c.device_id.in_(missing)))).mappings()
                for row in rows:
                    self._cache.setdefault(
                        row["device_id"],
                        Twin(
                            row["device_id"],
                            dict(row["desired"]),
                            dict(row["desired_meta"]),
                            row["desired_version"],
                            dict(row["reported"]),
                            dict(row["reported_meta"]),
                            row["reported_version"],
                        ),
                    )
        return [self._cache[d] for d in device_ids if d in self._cache]

    def _lock(self, device_id: str) -> asyncio.Lock:
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    async def patch_desired(
        self, device_id: str, patch: Mapping[str, Any], expected_version: int | None = None
    ) -> Twin:
        """Merge ``patch`` into the desired state (a ``null`` value removes the property)."""
        if not isinstance(patch, Mapping) or not patch:
            raise InvalidInput("desired state patch must be a non-empty JSON object")
        problem = self.registry.model_of(device_id).check_desired(patch)
        if problem:
            raise InvalidInput(problem)
        async with self._lock(device_id):
            current = await self.get(device_id)
            if expected_version is not None and expected_version != current.desired_version:
                raise VersionMismatch(f"desired state is at version {current.desired_version}, not {expected_version}")
            new = current.copy()
            now = now_ms()
            for key, value in patch.items():
                if value is None:
                    new.desired.pop(key, None)
                    new.desired_meta.pop(key, None)
                else:
                    new.desired[key] = value
                    new.desired_meta[key] = now
            new.desired_version += 1
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    sa.update(t.twins)
                    .where(t.twins.c.device_id == device_id, t.twins.c.desired_version == current.desired_version)
                    .values(desired=new.desired, desired_meta=new.desired_meta, desired_version=new.desired_version)
                )
                if result.rowcount != 1:
                    # Another hub worker changed it first: drop our cached copy and let the caller retry.
                    self._cache.pop(device_id, None)
                    raise VersionMismatch("desired state changed concurrently; read it again")
            self._cache[device_id] = new
        self.send_desired(new)
        self.bus.fire(Event(events.TWIN_CHANGED, device_id, {"side": "desired", **new.to_json()}, now))
        return new

    async def reset(self, device_id: str) -> Twin:
        """Empty both sides (a device changing hands keeps nothing of its former home); versions go on up."""
        async with self._lock(device_id):
            current = await self.get(device_id)
            new = Twin(device_id, {}, {}, current.desired_version + 1, {}, {}, current.reported_version + 1)
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.update(t.twins)
                    .where(t.twins.c.device_id == device_id)
                    .values(
                        desired={},
                        desired_meta={},
                        desired_version=new.desired_version,
                        reported={},
                        reported_meta={},
                        reported_version=new.reported_version,
                    )
                )
            self._cache[device_id] = new
        self.send_desired(new)
        self.bus.fire(Event(events.TWIN_CHANGED, device_id, {"side": "both", **new.to_json()}, now_ms()))
        return new

    def send_desired(self, twin: Twin) -> None:
        """Publish the desired state (retained) and the delta to the device."""
        self.publisher.publish(
            topics.desired(twin.device_id),
            orjson.dumps({"version": twin.desired_version, "state": twin.desired}),
            qos=1,
            retain=True,
        )
        delta = twin.delta
        if delta:
            self.publisher.publish(
                topics.delta(twin.device_id), orjson.dumps({"version": twin.desired_version, "state": delta}), qos=1
            )

    async def merge_reported(
        self, conn: AsyncConnection, updates: Mapping[str, list[tuple[int, dict[str, Any]]]]
    ) -> list[Twin]:
        """Merge reported patches, per device in arrival order, inside the caller's transaction.

        Returns the new twins; the caller calls :meth:`commit_reported` once the transaction has committed.
        """
        changed = []
        for device_id, patches in updates.items():
            twin = (await self.get(device_id, conn)).copy()
            for ts, patch in patches:
                for key, value in patch.items():
                    if value is None:
                        twin.reported.pop(key, None)
                        twin.reported_meta.pop(key, None)
                    else:
                        twin.reported[key] = value
                        twin.reported_meta[key] = ts
            twin.reported_version += len(patches)
            await conn.execute(
                sa.update(t.twins)
                .where(t.twins.c.device_id == device_id)
                .values(
                    reported=twin.reported, reported_meta=twin.reported_meta, reported_version=twin.reported_version
                )
            )
            changed.append(twin)
        return changed

    def commit_reported(self, twins: list[Twin]) -> None:
        now = now_ms()
        for twin in twins:
            before = self._cache.get(twin.device_id)
            had_delta = before.delta if before else {}
            if before is not None:
                # Keep the desired side of the cache: a desired patch may have landed while we wrote.
                before.reported, before.reported_meta = twin.reported, twin.reported_meta
                before.reported_version = twin.reported_version
                twin = before
            else:
                self._cache[twin.device_id] = twin
            delta = twin.delta
            if delta and delta != had_delta:
                self.publisher.publish(
                    topics.delta(twin.device_id),
                    orjson.dumps({"version": twin.desired_version, "state": delta}),
                    qos=1,
                )
            if self.bus.has_listeners(events.TWIN_CHANGED):
                self.bus.fire(Event(events.TWIN_CHANGED, twin.device_id, {"side": "reported", **twin.to_json()}, now))
