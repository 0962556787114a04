"""A TV's device page in the console: its players (a phone paired with the SDK against the browser TV page) and
its apps — state, launch with parameters, stop — answered by the TV page itself, with errors in words."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Screens, base_url
from tests.console.helpers import sign_in_in_browser
from tests.console.test_tv_game import _code
from tests.support.hubs import HubUnderTest
from tests.support.people import sign_up, sticker_code
from tosplus.sim.controller import SimController


async def test_a_tvs_page_shows_its_players_and_launches_apps(
    hub: HubUnderTest, browser: Any, screens: Screens
) -> None:
    owner = await sign_up(hub, "Olivia")
    async with owner.api:
        home = await owner.create_home("Flat", ("Living room",))
        tv_device = await hub.create_device("smart-tv", name="Living room TV")
        assert (await owner.bind(home["id"], await sticker_code(hub, tv_device["id"]))).status_code == 201
        base = base_url(hub)

        # The console, before the TV is on: the panel says so, and an app request is refused in words.
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        page = screens.watch(await context.new_page(), "console")
        await sign_in_in_browser(page, base, owner.email)
        await page.goto(f"{base}/console/#/devices/{tv_device['id']}")
        panel = page.locator("#screen-panel")
        await panel.get_by_text("The screen is not connected").wait_for()
        await panel.get_by_role("button", name="State").click()
        await panel.get_by_text("not connected").last.wait_for()

        # The TV page plays the TV; a phone pairs with the code it shows (the SDK's side A against the page's B).
        tv_context = await browser.new_context(viewport={"width": 1280, "height": 720})
        tv = screens.watch(await tv_context.new_page(), "tv")
        await tv.goto(f"{base}/console/tv.html#device={tv_device['id']}&secret={tv_device['secret']}")
        token = owner.api.headers["Authorization"].removeprefix("Bearer ")
        phone = SimController(str(hub.api.base_url), token, name="Olivia's phone")
        paired = await phone.pair(tv_device["id"], code=await _code(tv))
        async with phone.connect(paired):
            await panel.get_by_text("Connected · 1 of").wait_for(timeout=10000)
            await panel.get_by_role("cell", name="Olivia (Olivia's phone)").wait_for()
            await screens.shot(page, "players")

            # Apps, answered by the TV page: launch with parameters, state, stop, and one it does not have.
            await panel.get_by_label("App id").fill("arena")
            await panel.get_by_label("Parameters (JSON, for launching)").fill("not json")
            await panel.get_by_role("button", name="Launch").click()
            await panel.get_by_text("The parameters must be JSON").wait_for()
            await panel.get_by_label("Parameters (JSON, for launching)").fill('{"level": 2}')
            await panel.get_by_role("button", name="Launch").click()
            await panel.get_by_text("arena is running").wait_for()
            await panel.get_by_role("button", name="Stop").click()
            await panel.get_by_text("arena is stopped").wait_for()
            await panel.get_by_label("App id").fill("netflix")
            await panel.get_by_role("button", name="State").click()
            await panel.get_by_text("netflix is not installed on this screen").wait_for()
            await screens.shot(page, "apps")
            audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
            assert any(a["action"] == "screen.app_launched" for a in audit)

            # The owner removes the player from the console.
            await panel.get_by_role("button", name="Remove").click()
            await page.get_by_role("dialog").get_by_role("button", name="Remove").click()
            await panel.get_by_text("Nobody is playing on this screen.").wait_for(timeout=10000)
        await context.close()
        await tv_context.close()
