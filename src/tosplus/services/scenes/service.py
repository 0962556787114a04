"""Scenes: named sets of desired states and commands across a home's devices, run from the API, the console or
a device event, each run recorded with every device's result.

Scenes with a trigger are indexed in memory by (device, event name), so a device event costs one dictionary
lookup when no scene listens for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tosplus.core import bus as events
from tosplus.core.bus import Event
from tosplus.core.ids import new_id, now_ms
from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput, NotFound
from tosplus.services.homes.access import Need
from tosplus.services.scenes import tables as t
from tosplus.services.scenes.runner import Action, ActionResult, outcome, run_actions

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)
MAX_ACTIONS = 100
RUN_TIMEOUT_S = 5.0


class Scenes:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.engine = hub.engine
        self._triggers: dict[tuple[str, str], set[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.run_timeout_s = RUN_TIMEOUT_S

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            for row in await conn.execute(sa.select(t.scenes.c.id, t.scenes.c.trigger)):
                self._index(row.id, row.trigger)
        self.hub.bus.listen(events.DEVICE_EVENT, self._on_device_event)

    def _index(self, scene_id: str, trigger: dict[str, Any] | None) -> None:
        for ids in self._triggers.values():
            ids.discard(scene_id)
        if trigger:
            self._triggers.setdefault((trigger["device_id"], trigger["event"]), set()).add(scene_id)

    # -- definitions ------------------------------------------------------------------------------------------

    def _check(self, home_id: str, name: str, actions: list[Any], trigger: Any) -> tuple[str, list[Any], Any]:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name must be 1 to 200 characters")
        if not 1 <= len(actions) <= MAX_ACTIONS:
            raise InvalidInput(f"a scene needs 1 to {MAX_ACTIONS} actions")
        home = self.hub.people.homes.home(home_id)
        parsed = [Action.parse(a, f"actions[{i}]") for i, a in enumerate(actions)]
        outside = sorted({a.device_id for a in parsed} - set(home.devices))
        if outside:
            raise InvalidInput(f"not devices of this home: {', '.join(outside)}")
        if trigger is not None:
            if not isinstance(trigger, dict) or set(trigger) != {"device_id", "event"}:
                raise InvalidInput('trigger must be {"device_id": ..., "event": ...} or null')
            if trigger["device_id"] not in home.devices or not isinstance(trigger["event"], str):
                raise InvalidInput("the trigger's device must be a device of this home, its event a name")
        return name, actions, trigger

    async def create(self, home_id: str, name: str, actions: list[Any], trigger: Any, by: str | None) -> dict[str, Any]:
        name, actions, trigger = self._check(home_id, name, actions, trigger)
        row = {
            "id": new_id("scn"),
            "home_id": home_id,
            "name": name,
            "actions": actions,
            "trigger": trigger,
            "created_by": by,
            "created_at": now_ms(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.scenes).values(**row))
        self._index(row["id"], trigger)
        return row

    async def get(self, scene_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.scenes).where(t.scenes.c.id == scene_id))).first()
        if row is None:
            raise NotFound(f"no scene '{scene_id}'")
        return dict(row._mapping)

    async def of_home(self, home_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.scenes).where(t.scenes.c.home_id == home_id).order_by(t.scenes.c.created_at)
            )
            return [dict(r._mapping) for r in rows]

    async def update(self, scene_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        scene = await self.get(scene_id)
        merged = {**scene, **changes}
        name, actions, trigger = self._check(scene["home_id"], merged["name"], merged["actions"], merged["trigger"])
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.scenes).where(t.scenes.c.id == scene_id).values(name=name, actions=actions, trigger=trigger)
            )
        self._index(scene_id, trigger)
        return {**scene, "name": name, "actions": actions, "trigger": trigger}

    async def delete(self, scene_id: str) -> None:
        await self.get(scene_id)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.scene_runs).where(t.scene_runs.c.scene_id == scene_id))
            await conn.execute(sa.delete(t.scenes).where(t.scenes.c.id == scene_id))
        self._index(scene_id, None)

    # -- runs -------------------------------------------------------------------------------------------------

    async def run(self, scene: dict[str, Any], trigger: str, actor: Principal | None) -> dict[str, Any]:
        """Apply the scene now; the run's record, with one result per action."""
        started = now_ms()
        allowed: list[Action] = []
        results: dict[int, ActionResult] = {}
        home = self.hub.people.homes.homes.get(scene["home_id"])
        for index, doc in enumerate(scene["actions"]):
            action = Action.parse(doc)
            # A device may have left the home (or the runner's access) since the scene was written.
            in_home = home is not None and action.device_id in home.devices
            if not in_home or (
                actor is not None and not self.hub.people.access.can(actor, action.device_id, Need.CONTROL)
            ):
                results[index] = ActionResult(action.device_id, "refused", "the device is no longer in this home")
            else:
                allowed.append(action)
        ran = iter(await run_actions(self.hub, allowed, timeout_s=self.run_timeout_s) if allowed else [])
        ordered = [results[i] if i in results else next(ran) for i in range(len(scene["actions"]))]
        record = {
            "id": new_id("run"),
            "scene_id": scene["id"],
            "home_id": scene["home_id"],
            "trigger": trigger,
            "actor_id": actor.id if actor else None,
            "outcome": outcome(ordered),
            "results": [r.to_json() for r in ordered],
            "started_at": started,
            "finished_at": now_ms(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.scene_runs).values(**record))
        await self.hub.people.audit.record(
            actor,
            "scene.run",
            home_id=scene["home_id"],
            detail={"scene_id": scene["id"], "run_id": record["id"], "outcome": record["outcome"], "trigger": trigger},
            actor_label=None if actor else f"device event ({trigger})",
        )
        return {k: v for k, v in record.items() if k != "actor_id"}

    async def runs(self, scene_id: str, limit: int = 50) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.scene_runs)
                .where(t.scene_runs.c.scene_id == scene_id)
                .order_by(t.scene_runs.c.started_at.desc())
                .limit(limit)
            )
            return [{k: v for k, v in r._mapping.items() if k != "actor_id"} for r in rows]

    def _on_device_event(self, event: Event) -> None:
        scene_ids = self._triggers.get((event.device_id or "", str(event.data.get("name"))))
        for scene_id in list(scene_ids or ()):
            self._spawn(self._run_triggered(scene_id, event.data.get("name")))

    async def _run_triggered(self, scene_id: str, event_name: Any) -> None:
        try:
            await self.run(await self.get(scene_id), "event", None)
        except Exception:
            log.exception("scene %s triggered by event %s failed to run", scene_id, event_name)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
