"""People in tests: sign up, sign in, and an API client acting as them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.hubs import HubUnderTest

PASSWORD = "correct horse battery"


@dataclass
class Person:
    email: str
    user_id: str
    api: httpx.AsyncClient
    refresh_token: str

    async def create_home(self, name: str = "Home", rooms: tuple[str, ...] = ("Living room",)) -> dict[str, Any]:
        response = await self.api.post("/api/v1/homes", json={"name": name, "rooms": list(rooms)})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def bind(self, home_id: str, code: str, room_id: str | None = None) -> httpx.Response:
        return await self.api.post(f"/api/v1/homes/{home_id}/devices/bind", json={"code": code, "room_id": room_id})


def new_email(name: str = "person") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def sign_up(hub: HubUnderTest, name: str = "person", password: str = PASSWORD) -> Person:
    """A new person, signed in with the OAuth2 password grant; close ``person.api`` when done."""
    base = str(hub.api.base_url)
    email = new_email(name)
    async with httpx.AsyncClient(base_url=base) as anonymous:
        created = await anonymous.post("/api/v1/auth/signup", json={"email": email, "password": password, "name": name})
        assert created.status_code == 201, created.text
        grant = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": email, "password": password}
        )
        assert grant.status_code == 200, grant.text
    body = grant.json()
    client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=30)
    return Person(email, body["user"]["id"], client, body["refresh_token"])


async def sticker_code(hub: HubUnderTest, device_id: str) -> str:
    response = await hub.api.post(f"/api/v1/devices/{device_id}/binding-codes", json={"valid_days": 1})
    assert response.status_code == 201, response.text
    return str(response.json()["code"])
