"""A home with a TV whose screen side is connected, and people to pair phones with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sim.controller import SimController
from tosplus.sim.screen import SimScreen


def token_of(person: Person) -> str:
    return str(person.api.headers["Authorization"])[len("Bearer ") :]


def phone(hub: HubUnderTest, person: Person, name: str = "phone") -> SimController:
    return SimController(str(hub.api.base_url), token_of(person), name=name)


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


@dataclass
class LivingRoom:
    hub: HubUnderTest
    owner: Person
    home: dict[str, Any]
    tv: dict[str, Any]
    screen: SimScreen
    people: list[Person] = field(default_factory=list)

    async def join(self, role: str = "member", devices: list[str] | None = None) -> Person:
        person = await sign_up(self.hub, role)
        self.people.append(person)
        terms: dict[str, Any] = {"role": role}
        if role == "guest":
            terms["devices"] = devices if devices is not None else [self.tv["id"]]
        invitation = await self.owner.api.post(f"/api/v1/homes/{self.home['id']}/invitations", json=terms)
        assert invitation.status_code == 201, invitation.text
        accepted = await person.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
        assert accepted.status_code == 200, accepted.text
        return person

    async def code(self) -> str:
        """The code the TV shows now (a fresh one when none)."""
        shown = self.screen.shown
        if shown is None:
            shown = await self.screen.show_pairing()
        return shown.code


async def _living_room(hub: HubUnderTest, **screen_options: Any) -> AsyncIterator[LivingRoom]:
    owner = await sign_up(hub, "owner")
    home = await owner.create_home("Flat")
    tv = await hub.create_device("smart-tv")
    bound = await owner.bind(home["id"], await sticker_code(hub, tv["id"]), home["rooms"][0]["id"])
    assert bound.status_code == 201, bound.text
    screen = SimScreen(tv["id"], tv["secret"], str(hub.api.base_url), **screen_options)
    room = LivingRoom(hub, owner, home, tv, screen)
    try:
        async with screen:
            await screen.link.wait_connected(10)
            yield room
    finally:
        for person in [owner, *room.people]:
            await person.api.aclose()


@pytest.fixture
async def living_room(hub: HubUnderTest) -> AsyncIterator[LivingRoom]:
    async for room in _living_room(hub):
        yield room


@pytest.fixture
async def any_living_room(any_hub: HubUnderTest) -> AsyncIterator[LivingRoom]:
    """The living room on both deployments: embedded + SQLite, Mosquitto + PostgreSQL."""
    async for room in _living_room(any_hub):
        yield room
