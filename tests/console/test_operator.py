"""The operator's view with the admin token: products, fleets, presence and ingest rate, updated live."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from tests.console.conftest import Screens, base_url
from tests.support.hubs import ADMIN_TOKEN, HubUnderTest


async def test_operator_signs_in_with_the_admin_token_and_sees_fleets_live(
    hub: HubUnderTest, browser: Any, screens: Screens
) -> None:
    devices = [await hub.create_device("smart-plug", name=f"plug {i}") for i in range(3)]
    page = screens.watch(await browser.new_page(viewport={"width": 1280, "height": 900}))
    await page.goto(base_url(hub) + "/")
    await page.wait_for_selector("body[data-ready]")
    assert page.url.endswith("/console/#/signin")
    await page.get_by_role("link", name="Operator token").click()

    # A wrong token is refused in words, and nothing is kept.
    await page.get_by_role("textbox", name="Token").fill("not-the-token")
    await page.get_by_role("button", name="Sign in as operator").click()
    await page.get_by_role("alert").filter(has_text="This token is not an operator token").wait_for()
    await screens.shot(page, "wrong-token")

    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in as operator").click()
    await page.wait_for_url("**/#/operator")
    plugs = page.locator("tr", has_text="smart-plug")
    await plugs.locator("td[data-label=Devices]").filter(has_text="3").wait_for()
    await plugs.locator("td[data-label=Online]").filter(has_text="0").wait_for()
    await screens.shot(page, "operator")

    # A device connects: the presence list and the fleet's online count follow without a reload.
    async with hub.device_client(devices[0]) as mqtt:
        await mqtt.publish(f"tos/v1/{devices[0]['id']}/status", b"online", qos=1, retain=True)
        await page.locator("#presence li", has_text=devices[0]["id"]).filter(has_text="came online").wait_for()
        await plugs.locator("td[data-label=Online]").filter(has_text="1 (33 %)").wait_for(timeout=5000)

        # Telemetry flowing: the ingest rate (from GET /hub every 2 s) shows more than nothing.
        deadline = time.monotonic() + 8
        rate = page.locator(".stat", has_text="messages/s").locator("b")
        while time.monotonic() < deadline:
            payload = orjson.dumps({"power_w": 100.0, "on": True})
            for _ in range(20):
                await mqtt.publish(f"tos/v1/{devices[0]['id']}/telemetry", payload, qos=1)
            text = (await rate.inner_text()).replace(",", "")
            if text not in ("—", "0.0") and float(text) > 0:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the ingest rate stayed at {await rate.inner_text()}")
        assert await page.locator(".chart canvas").count() >= 1  # the uPlot sparkline
    await screens.shot(page, "operator-live")

    # The token is kept in this tab only: a reload stays signed in, signing out forgets it.
    await page.reload()
    await page.wait_for_selector("body[data-ready]")
    await page.get_by_role("heading", name="Operator").wait_for()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/#/signin")
    assert await page.evaluate("sessionStorage.length") == 0
