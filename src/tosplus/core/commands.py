"""Commands: the hub asks a device to do something and waits for its answer.

States: QUEUED (waiting for the device) → SENT (published) → SUCCEEDED | FAILED | TIMED_OUT; a persistent
command waits QUEUED for an offline device until it EXPIRES; a QUEUED or SENT command can be CANCELED.
A command to an offline device that is not persistent fails at once with the reason, instead of waiting out
its timeout for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core import bus as events
from tosplus.core.bus import Bus, Event
from tosplus.core.ids import new_id, now_ms
from tosplus.core.publisher import Publisher
from tosplus.core.registry import Registry
from tosplus.errors import Conflict, InvalidInput, NotFound
from tosplus.gateway import topics
from tosplus.storage import tables as t
from tosplus.storage.group_commit import GroupCommit

log = logging.getLogger(__name__)
_INSERT = sa.insert(t.commands)
_FINISH = (
    sa.update(t.commands)
    .where(
        t.commands.c.id == sa.bindparam("_id"),
        sa.or_(t.commands.c.state == sa.literal("QUEUED"), t.commands.c.state == sa.literal("SENT")),
    )
    .values(
        state=sa.bindparam("_state"),
        result=sa.bindparam("_result", type_=sa.JSON),
        error=sa.bindparam("_error"),
        completed_at=sa.bindparam("_at"),
    )
)

QUEUED, SENT, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED, CANCELED = (
    "QUEUED",
    "SENT",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "EXPIRED",
    "CANCELED",
)
FINAL = {SUCCEEDED, FAILED, TIMED_OUT, EXPIRED, CANCELED}
MAX_TIMEOUT_S = 300.0
MAX_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    device_id: str
    name: str
    params: Any
    state: str
    persistent: bool
    timeout_s: float
    created_at: int
    sent_at: int | None
    expires_at: int | None
    completed_at: int | None
    result: Any
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "name": self.name,
            "params": self.params,
            "state": self.state,
            "persistent": self.persistent,
            "timeout_s": self.timeout_s,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
            "expires_at": self.expires_at,
            "completed_at": self.completed_at,
            "result": self.result,
            "error": self.error,
        }


def _from_row(row: Any) -> Command:
    return Command(**{name: row[name] for name in Command.__slots__})


class Commands:
    def __init__(
        self,
        engine: AsyncEngine,
        registry: Registry,
        bus: Bus,
        publisher: Publisher,
        is_online: Any,
        default_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.bus = bus
        self.publisher = publisher
        self.is_online = is_online
        self.default_timeout_s = default_timeout_s
        self._waiting: dict[str, asyncio.Future[Command]] = {}
        self._inflight: dict[str, Command] = {}  # sent by this process, not final yet
        self._writes = GroupCommit(engine)
        self._inserting: dict[str, asyncio.Future[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference so it is not collected mid-way."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def send(
        self,
        device_id: str,
        name: str,
        params: Any = None,
        *,
        timeout_s: float | None = None,
        persistent: bool = False,
        expires_in_s: float | None = None,
        wait: bool = True,
    ) -> Command:
        """Create a command and, unless it must wait for the device, send it and wait for the answer."""
        self.registry.device(device_id)
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise InvalidInput(f"timeout_s must be between 0 and {MAX_TIMEOUT_S:g}")
        model = self.registry.model_of(device_id)
        action = model.actions.get(name)
        if params is None and action is not None and action.input is not None and action.input.type == "object":
            params = {}  # an action whose parameters are all optional may be called without any
        problem = model.check_action(name, params)
        if problem:
            raise InvalidInput(problem)
        now = now_ms()
        expires_at = None
        if persistent:
            expiry = 3600.0 if expires_in_s is None else expires_in_s
            if not 0 < expiry <= MAX_EXPIRY_S:
                raise InvalidInput(f"expires_in_s must be between 0 and {MAX_EXPIRY_S}")
            expires_at = now + int(expiry * 1000)
        online = self.is_online(device_id)
        # One write per command on the way out: it is stored in the state it leaves this function in.
        state, error = (SENT, None) if online else (QUEUED, None) if persistent else (FAILED, "device is offline")
        row = {
            "id": new_id("cmd"),
            "device_id": device_id,
            "name": name,
            "params": params,
            "state": state,
            "persistent": persistent,
            "timeout_s": timeout,
            "created_at": now,
            "sent_at": now if state == SENT else None,
            "expires_at": expires_at,
            "completed_at": now if state == FAILED else None,
            "result": None,
            "error": error,
        }
        command = _from_row(row)
        if state != SENT:
            await self._writes.execute(_INSERT, row)
            self._fire(command)
            return command
        # Publish while the row is being written: the device's answer takes about as long as a commit, and
        # finishing the command waits for its row anyway (see _finish).
        inserted = asyncio.ensure_future(self._writes.execute(_INSERT, row))
        self._inserting[command.id] = inserted
        future = self._dispatch(command)
        try:
            await inserted
        except BaseException:
            self._forget(command.id)
            raise
        finally:
            self._inserting.pop(command.id, None)
        self._fire(command)
        if not wait:
            return command
        return await future

    def _forget(self, command_id: str) -> None:
        """The command could not be recorded: stop waiting for it."""
        self._inflight.pop(command_id, None)
        timer = self._timers.pop(command_id, None)
        if timer:
            timer.cancel()
        future = self._waiting.pop(command_id, None)
        if future is not None and not future.done():
            future.cancel()

    def _dispatch(self, command: Command) -> asyncio.Future[Command]:
        """Publish a command and arm its timeout; the future resolves with its final state."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Command] = loop.create_future()
        self._waiting[command.id] = future
        self._inflight[command.id] = command
        self.publisher.publish(
            topics.command(command.device_id, command.id),
            orjson.dumps({"name": command.name, "params": command.params if command.params is not None else {}}),
            qos=1,
        )
        self._timers[command.id] = loop.call_later(command.timeout_s, lambda: self._spawn(self._timed_out(command.id)))
        if command.state == QUEUED:
            self._spawn(self._mark_sent(command.id))
        return future

    async def _mark_sent(self, command_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.commands)
                .where(t.commands.c.id == command_id, t.commands.c.state == QUEUED)
                .values(state=SENT, sent_at=now_ms())
            )

    async def _timed_out(self, command_id: str) -> None:
        await self._finish(command_id, TIMED_OUT, error="the device did not answer in time", only_from={QUEUED, SENT})

    async def _finish(
        self, command_id: str, state: str, *, result: Any = None, error: str | None = None, only_from: set[str]
    ) -> Command:
        completed_at = now_ms()
        known = self._inflight.pop(command_id, None)
        if known is not None and {QUEUED, SENT} <= only_from:
            # Sent by this process and not final (we hold the only copy that can finish it): no need to read
            # it back, and the write can share a transaction with others.
            inserting = self._inserting.get(command_id)
            if inserting is not None:
                await asyncio.shield(inserting)
            await self._writes.execute(
                _FINISH, {"_id": command_id, "_state": state, "_result": result, "_error": error, "_at": completed_at}
            )
            command = replace(known, state=state, result=result, error=error, completed_at=completed_at)
            self._resolve(command, state)
            return command
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                sa.update(t.commands)
                .where(t.commands.c.id == command_id, t.commands.c.state.in_(only_from))
                .values(state=state, result=result, error=error, completed_at=completed_at)
            )
            if changed.rowcount == 1 and known is not None:
                command = replace(known, state=state, result=result, error=error, completed_at=completed_at)
            else:  # not ours to know (sent before a restart, or already final): read what it is
                row = (await conn.execute(sa.select(t.commands).where(t.commands.c.id == command_id))).mappings().one()
                command = _from_row(row)
        self._resolve(command, state)
        return command

    def _resolve(self, command: Command, intended: str) -> None:
        timer = self._timers.pop(command.id, None)
        if timer:
            timer.cancel()
        future = self._waiting.pop(command.id, None)
        if command.state in FINAL:
            if future is not None and not future.done():
                future.set_result(command)
            if command.state == intended:
                self._fire(command)

    async def on_response(self, device_id: str, request_id: str, doc: Any) -> str | None:
        """A device answered; returns why the answer is refused, or None."""
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            return 'a command response must be {"ok": true, "result": ...} or {"ok": false, "error": "..."}'
        known = self._inflight.get(request_id)
        if known is None or known.device_id != device_id:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(t.commands.c.device_id, t.commands.c.state).where(t.commands.c.id == request_id)
                    )
                ).first()
            if row is None or row.device_id != device_id:
                return f"no command '{request_id}' was sent to this device"
            if row.state in FINAL:
                return f"command '{request_id}' is already {row.state}"
        if doc["ok"]:
            await self._finish(request_id, SUCCEEDED, result=doc.get("result"), only_from={QUEUED, SENT})
        else:
            await self._finish(
                request_id, FAILED, error=str(doc.get("error") or "the device refused"), only_from={QUEUED, SENT}
            )
        return None

    async def deliver_queued(self, device_ids: list[str]) -> int:
        """These devices came online: send their waiting persistent commands, oldest first (one query)."""
        now = now_ms()
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(t.commands)
                        .where(t.commands.c.device_id.in_(device_ids), t.commands.c.state == QUEUED)
                        .order_by(t.commands.c.created_at)
                    )
                )
                .mappings()
                .all()
            )
        sent = 0
        for row in rows:
            command = _from_row(row)
            if command.expires_at is not None and command.expires_at <= now:
                await self._finish(
                    command.id, EXPIRED, error="expired before the device came online", only_from={QUEUED}
                )
            elif command.id not in self._waiting:
                self._dispatch(command)
                sent += 1
        return sent

    async def expire_due(self) -> int:
        now = now_ms()
        async with self.engine.connect() as conn:
            ids = [
                r[0]
                for r in await conn.execute(
                    sa.select(t.commands.c.id).where(t.commands.c.state == QUEUED, t.commands.c.expires_at <= now)
                )
            ]
        for command_id in ids:
            await self._finish(command_id, EXPIRED, error="expired before the device came online", only_from={QUEUED})
        return len(ids)

    async def recover(self) -> None:
        """After a restart: commands that were in flight when the hub stopped can no longer be waited for."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.commands)
                .where(t.commands.c.state == SENT, t.commands.c.persistent.is_(False))
                .values(state=TIMED_OUT, error="the hub restarted while waiting for the answer", completed_at=now_ms())
            )
            # A persistent command that was sent but not answered is sent again when the device is next online.
            await conn.execute(
                sa.update(t.commands)
                .where(t.commands.c.state == SENT, t.commands.c.persistent.is_(True))
                .values(state=QUEUED)
            )

    async def cancel(self, device_id: str, command_id: str) -> Command:
        command = await self.get(command_id)
        if command.device_id != device_id:
            raise NotFound(f"command '{command_id}' does not exist")
        if command.state in FINAL:
            raise Conflict(f"command is already {command.state}")
        return await self._finish(command_id, CANCELED, error="canceled", only_from={QUEUED, SENT})

    async def get(self, command_id: str) -> Command:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.commands).where(t.commands.c.id == command_id))).mappings().first()
        if row is None:
            raise NotFound(f"command '{command_id}' does not exist")
        return _from_row(row)

    async def history(self, device_id: str, limit: int = 100, before: int | None = None) -> list[Command]:
        query = sa.select(t.commands).where(t.commands.c.device_id == device_id)
        if before is not None:
            query = query.where(t.commands.c.created_at < before)
        query = query.order_by(t.commands.c.created_at.desc()).limit(min(limit, 1000))
        async with self.engine.connect() as conn:
            return [_from_row(r) for r in (await conn.execute(query)).mappings()]

    def _fire(self, command: Command) -> None:
        if not self.bus.has_listeners(events.COMMAND):
            return
        self.bus.fire(Event(events.COMMAND, command.device_id, command.to_json(), now_ms()))


async def pending_for(commands: Commands, device_id: str) -> list[Command]:
    """Commands a polling device (HTTP, CoAP) should act on now: sent or waiting, not expired."""
    now = now_ms()
    async with commands.engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    sa.select(t.commands)
                    .where(t.commands.c.device_id == device_id, t.commands.c.state.in_((QUEUED, SENT)))
                    .order_by(t.commands.c.created_at)
                )
            )
            .mappings()
            .all()
        )
    out = []
    for row in rows:
        command = _from_row(row)
        if command.expires_at is not None and command.expires_at <= now and command.state == QUEUED:
            continue
        if command.state == QUEUED and command.id not in commands._waiting:
            commands._dispatch(command)
        out.append(command)
    return out
