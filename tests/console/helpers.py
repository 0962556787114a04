"""Steps the console tests share: people signing up in the browser or through the API, simulated devices."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.support.hubs import HubUnderTest

PASSWORD = "correct horse battery"


def new_email(name: str) -> str:
    return f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"


async def sign_up_in_browser(page: Any, base: str, name: str) -> str:
    """Create an account on the sign-up page (which signs in); returns the e-mail."""
    email = new_email(name)
    await page.goto(f"{base}/console/#/signup")
    await page.wait_for_selector("body[data-ready]")
    form = page.get_by_role("form", name="Create account")
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("E-mail").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Create account").click()
    await page.get_by_role("heading", name="Homes").wait_for()
    return email


async def sign_in_in_browser(page: Any, base: str, email: str, then: str = "") -> None:
    await page.goto(f"{base}/console/#/signin")
    await page.wait_for_selector("body[data-ready]")
    form = page.get_by_role("form", name="Sign in")
    await form.get_by_label("E-mail").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Homes").wait_for()
    if then:
        await page.goto(f"{base}/console/#{then}")


async def person_api(hub: HubUnderTest, name: str) -> tuple[str, httpx.AsyncClient]:
    """A person created through the API; returns the e-mail and a client acting as them (close it)."""
    base = str(hub.api.base_url)
    email = new_email(name)
    async with httpx.AsyncClient(base_url=base) as anonymous:
        created = await anonymous.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
        assert created.status_code == 201, created.text
        session = await anonymous.post("/api/v1/auth/session", json={"email": email, "password": PASSWORD})
        assert session.status_code == 200, session.text
    token = session.json()["access_token"]
    return email, httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def sticker_code(hub: HubUnderTest, device_id: str) -> str:
    """A binding code issued by the operator (as printed on a sticker)."""
    response = await hub.api.post(f"/api/v1/devices/{device_id}/binding-codes", json={"valid_days": 1})
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


@contextlib.asynccontextmanager
async def simulated(hub: HubUnderTest, product_id: str, **create: Any) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """A new device of ``product_id`` run by its simulator (applies desired state, reports it); connected."""
    from tosplus.sim.behaviours import create_device

    device = await hub.create_device(product_id, **create)
    sim = create_device(
        product_id, device["id"], device["secret"], host=hub.mqtt_host, port=hub.mqtt_port, period_s=3600
    )
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(sim.run(stop, on_ready=lambda _sim, _ok: ready.set()))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
        for _ in range(300):  # connected; the hub marks it online when it has read its status message
            if hub.hub.presence.is_online(device["id"]):
                break
            await asyncio.sleep(0.05)
        yield device, sim
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def device_code(hub: HubUnderTest, device: dict[str, Any], sim: Any) -> str:
    """The binding code the device shows, asked from the hub over MQTT (docs/homes.md), else a sticker code."""
    request = getattr(sim.client, "request_binding_code", None)
    if request is None:
        return await sticker_code(hub, device["id"])
    return str((await request())["code"])
