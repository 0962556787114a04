"""The homes-and-people slice assembled: accounts, sign-in, homes, access rules, binding and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core import bus as events
from tosplus.core.bus import Bus, Event
from tosplus.core.ids import now_ms
from tosplus.core.registry import Registry
from tosplus.core.tokens import Tokens
from tosplus.core.twins import Twins
from tosplus.errors import TosError
from tosplus.gateway import topics
from tosplus.services.homes.access import Access
from tosplus.services.homes.accounts import Accounts
from tosplus.services.homes.audit import Audit
from tosplus.services.homes.auth import Auth
from tosplus.services.homes.binding import Binding
from tosplus.services.homes.homes import Homes


@dataclass
class People:
    accounts: Accounts
    auth: Auth
    homes: Homes
    access: Access
    binding: Binding
    audit: Audit
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    publisher: Any = None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget_deleted(self, event: Event) -> None:
        """A deleted device leaves its home (and guests' lists) too."""
        if event.data.get("action") == "deleted" and event.device_id in self.homes.device_home:
            self._spawn(self._remove(event.device_id))

    async def _remove(self, device_id: str) -> None:
        await self.homes.remove_device(device_id)

    def _on_binding_request(self, event: Event) -> None:
        if event.device_id:
            self._spawn(self._answer_binding_request(event.device_id))

    async def _answer_binding_request(self, device_id: str) -> None:
        """A screen device asked for a code to show: send it one, or say why not on its errors topic."""

        async def code() -> dict[str, Any]:
            return (await self.binding.issue(device_id)).to_json()

        await self.answer_device(device_id, "bind/request", topics.binding_code(device_id), code)

    async def answer_device(
        self, device_id: str, request: str, answer_topic: str, work: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        """Answer a device's request (``request``: its topic under the device, e.g. ``bind/request``) with what
        ``work`` returns on ``answer_topic`` (QoS 1, not retained), or with the reason it raised on the device's
        errors topic, naming the request's topic."""
        try:
            answer = await work()
        except TosError as exc:
            reason = {"topic": f"{topics.PREFIX}{device_id}/{request}", "reason": exc.detail, "at": now_ms()}
            self.publisher.publish(topics.errors(device_id), orjson.dumps(reason), qos=1)
        else:
            self.publisher.publish(answer_topic, orjson.dumps(answer), qos=1)


async def open_people(
    engine: AsyncEngine, bus: Bus, registry: Registry, twins: Twins, tokens: Tokens, publisher: Any
) -> People:
    accounts = Accounts(engine)
    await accounts.load()
    auth = Auth(engine, accounts, tokens)
    await auth.load()
    homes = Homes(engine)
    await homes.load()
    people = People(
        accounts, auth, homes, Access(registry, homes), Binding(engine, registry, twins, homes), Audit(engine)
    )
    people.publisher = publisher
    bus.listen(events.DEVICE_LIFECYCLE, people._forget_deleted)
    bus.listen(events.BINDING_REQUESTED, people._on_binding_request)
    return people
