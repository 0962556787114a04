"""Presence: online/offline and last seen, from birth and last-will messages and from traffic.

A device is online from its ``online`` status message (its birth) or any message it sends, and offline from
its ``offline`` status (sent by itself or by the broker as its last will) or when it has been silent for
longer than its product's inactivity timeout. Changes are written to the database in the background; the
in-memory map is what the hub decides with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core import bus as events
from tosplus.core.bus import Bus, Event
from tosplus.core.ids import now_ms
from tosplus.core.registry import Registry
from tosplus.storage import tables as t

log = logging.getLogger(__name__)
OnlineHook = Callable[[list[str]], Awaitable[None]]


@dataclass(slots=True)
class State:
    online: bool
    since: int | None
    last_seen: int | None


class Presence:
    def __init__(self, engine: AsyncEngine, registry: Registry, bus: Bus) -> None:
        self.engine = engine
        self.registry = registry
        self.bus = bus
        self.states: dict[str, State] = {}
        self._dirty: set[str] = set()
        self._online_hooks: list[OnlineHook] = []
        self._pending_hooks: list[str] = []
        self._hook_runner: asyncio.Task[None] | None = None
        bus.listen(events.DEVICE_LIFECYCLE, self._forget_deleted)

    def _forget_deleted(self, event: Event) -> None:
        if event.data.get("action") == "deleted" and event.device_id:
            self.states.pop(event.device_id, None)
            self._dirty.discard(event.device_id)

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.devices.c.id, t.devices.c.online, t.devices.c.presence_at, t.devices.c.last_seen)
            )
            for row in rows:
                self.states[row.id] = State(bool(row.online), row.presence_at, row.last_seen)

    def on_online(self, hook: OnlineHook) -> None:
        """Run ``hook(device_ids)`` for devices that came online (deliver queued commands, resend twin).

        Hooks run in one background task, in order, with every device that came online since the last run:
        10,000 devices reconnecting after an outage cost a few queries, and never hold up ingest.
        """
        self._online_hooks.append(hook)

    def is_online(self, device_id: str) -> bool:
        state = self.states.get(device_id)
        return bool(state and state.online)

    def state(self, device_id: str) -> State:
        return self.states.get(device_id) or State(False, None, None)

    def seen(self, device_id: str, at: int) -> None:
        """Any message from the device: it is alive."""
        state = self.states.get(device_id)
        if state is None:
            state = self.states[device_id] = State(False, None, None)
        state.last_seen = at
        self._dirty.add(device_id)
        if not state.online:
            self._change(device_id, state, True, at, "traffic")

    def status(self, device_id: str, online: bool, at: int) -> None:
        state = self.states.get(device_id)
        if state is None:
            state = self.states[device_id] = State(False, None, None)
        if online:
            state.last_seen = at
        self._dirty.add(device_id)
        if state.online != online or online:
            # A repeated 'online' is a reconnect (the broker may never have told us of the drop): treat it as
            # a new session, so queued commands and the desired state go out again.
            self._change(device_id, state, online, at, "status")

    def _change(self, device_id: str, state: State, online: bool, at: int, why: str) -> None:
        was = state.online
        state.online, state.since = online, at
        if was != online:
            self.bus.fire(Event(events.PRESENCE, device_id, {"online": online, "reason": why}, at))
        if online:
            self._pending_hooks.append(device_id)

    def kick_online_hooks(self) -> None:
        """Make sure the hooks will run for the devices that came online (call after a batch of messages)."""
        if self._pending_hooks and (self._hook_runner is None or self._hook_runner.done()):
            self._hook_runner = asyncio.create_task(self._run_online_hooks(), name="online-hooks")

    async def _run_online_hooks(self) -> None:
        while self._pending_hooks:
            pending, self._pending_hooks = self._pending_hooks, []
            device_ids = [d for d in dict.fromkeys(pending) if d in self.registry.devices]
            for start in range(0, len(device_ids), 500):
                chunk = device_ids[start : start + 500]
                for hook in self._online_hooks:
                    try:
                        await hook(chunk)
                    except Exception:
                        log.exception("an online hook failed for %d devices", len(chunk))

    async def wait_online_hooks(self) -> None:
        """Until the hooks have run for everything pending (shutdown, tests)."""
        while self._hook_runner is not None and not self._hook_runner.done():
            await asyncio.shield(self._hook_runner)

    def sweep(self, now: int | None = None) -> list[str]:
        """Mark devices offline whose silence is longer than their product's inactivity timeout."""
        now = now if now is not None else now_ms()
        gone = []
        for device_id, state in self.states.items():
            if not state.online:
                continue
            device = self.registry.devices.get(device_id)
            if device is None:
                continue
            timeout_ms = self.registry.products[device.product_id].model.inactivity_timeout_s * 1000
            if state.last_seen is None or now - state.last_seen > timeout_ms:
                state.online, state.since = False, now
                self._dirty.add(device_id)
                gone.append(device_id)
                self.bus.fire(Event(events.PRESENCE, device_id, {"online": False, "reason": "inactivity"}, now))
        return gone

    def take_seen(self) -> dict[str, int]:
        """Last-seen times changed since the previous call (an ingest worker hands these to the main process)."""
        dirty, self._dirty = self._dirty, set()
        return {d: s.last_seen for d in dirty if (s := self.states.get(d)) is not None and s.last_seen is not None}

    async def flush(self) -> None:
        """Write changed presence to the database (one statement per device, one transaction)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = [
            {"_id": d, "online": s.online, "presence_at": s.since, "last_seen": s.last_seen}
            for d in dirty
            if (s := self.states.get(d)) is not None
        ]
        if not rows:
            return
        stmt = (
            sa.update(t.devices)
            .where(t.devices.c.id == sa.bindparam("_id"))
            .values(
                online=sa.bindparam("online"),
                presence_at=sa.bindparam("presence_at"),
                last_seen=sa.bindparam("last_seen"),
            )
        )
        try:
            async with self.engine.begin() as conn:
                await conn.execute(stmt, rows)
        except Exception:
            self._dirty |= dirty
            raise
