"""A person's whole way through the console, in a real browser against a real hub and a simulated device:
sign up, create a home, bind the device with its code, switch it on the page and see the device's reported
state come back live, make and run a scene and see each device's result; and a second person sees nothing.
"""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Screens, base_url
from tests.console.helpers import device_code, sign_up_in_browser, simulated, sticker_code
from tests.support.hubs import HubUnderTest


async def test_sign_up_create_home_bind_control_scene_and_isolation(
    hub: HubUnderTest, browser: Any, screens: Screens
) -> None:
    base = base_url(hub)
    async with simulated(hub, "light", name="factory name") as (device, sim):
        device_id = device["id"]
        sim.state["on"] = False  # the lamp starts switched off (on the device itself)
        await sim.report_changes()
        owner_context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = screens.watch(await owner_context.new_page(), "owner")

        # Sign up (which signs in) and create a home with two rooms.
        await sign_up_in_browser(page, base, "Alice")
        await page.get_by_text("You are not in any home yet").wait_for()
        await screens.shot(page, "signed-up")
        create = page.get_by_role("form", name="Create a home")
        await create.get_by_label("Name").fill("Flat")
        await create.get_by_label("Rooms").fill("Living room, Kitchen")
        await create.get_by_role("button", name="Create home").click()
        await page.get_by_role("heading", name="Flat").wait_for()
        await page.get_by_role("heading", name="Living room").wait_for()
        await screens.shot(page, "home-created")

        # Bind the device with the code it shows, typed the way people do (lower case, no dash).
        code = await device_code(hub, device, sim)
        await page.get_by_role("link", name="Add a device").first.click()
        bind = page.get_by_role("form", name="Add a device")
        await bind.get_by_label("Binding code").fill(code.replace("-", "").lower())
        await bind.get_by_label("Room").select_option(label="Living room")
        await bind.get_by_label("Name").fill("Desk lamp")
        await screens.shot(page, "bind-form")
        await bind.get_by_role("button", name="Add device").click()
        await page.get_by_role("heading", name="Desk lamp").wait_for()
        await screens.shot(page, "device-bound")

        # A second device, never connected (its sticker code): it will be offline when the scene runs.
        plug = await hub.create_device("smart-plug")
        await page.get_by_role("link", name="Flat").click()
        await page.get_by_role("link", name="Add a device").first.click()
        await bind.get_by_label("Binding code").fill(await sticker_code(hub, plug["id"]))
        await bind.get_by_label("Room").select_option(label="Kitchen")
        await bind.get_by_label("Name").fill("Porch plug")
        await bind.get_by_role("button", name="Add device").click()
        await page.get_by_role("heading", name="Porch plug").wait_for()

        # The home page: the card in its room, online, with controls from the light's thing model.
        await page.get_by_role("link", name="Flat").click()
        card = page.locator(f"article.card[data-device-id='{device_id}']")
        await card.wait_for()
        assert await page.locator("section.room", has_text="Living room").locator(card).count() == 1
        await page.locator(f"article.card[data-device-id='{device_id}'][data-online=true]").wait_for()
        on = card.locator("[data-prop=on]")
        await card.locator("[data-prop=on][data-value]").wait_for()  # its state has loaded
        before = await on.get_attribute("data-value")
        assert before == "false", before

        # Switch it on: the desired state goes to the device, which reports it; the card shows it live.
        await on.get_by_role("switch").click()
        applied = f"[data-device-id='{device_id}'] [data-prop=on][data-value=true][data-pending=false]"
        await page.locator(applied).wait_for(timeout=10_000)
        assert await on.locator(".prop-value").inner_text() == "On"
        twin = (await hub.api.get(f"/api/v1/devices/{device_id}/twin")).json()
        assert twin["reported"]["state"]["on"] is True
        await screens.shot(page, "switched-on")

        # A change made on the device itself (not through the page) shows up without a reload.
        await sim.client.report({"brightness": 37})
        await card.locator("[data-prop=brightness][data-value='37']").wait_for(timeout=10_000)

        # A scene that switches the light off; run it and read each device's result.
        await page.get_by_role("navigation", name="Home").get_by_role("link", name="Scenes").click()
        await page.get_by_role("link", name="New scene").click()
        scene = page.get_by_role("form", name="Scene")
        await scene.get_by_label("Scene name").fill("Lights off")
        await scene.get_by_label("Include Desk lamp").check()
        await (
            scene.locator("fieldset", has_text="Desk lamp").get_by_label("Set On").check()
        )  # the switch stays off: "on = false"
        await scene.get_by_label("Include Porch plug").check()
        await scene.locator("fieldset", has_text="Porch plug").get_by_label("Set On").check()
        await screens.shot(page, "scene-editor")
        await scene.get_by_role("button", name="Save scene").click()
        entry = page.locator("article[data-scene-id]", has_text="Lights off")
        await entry.wait_for()
        await entry.get_by_role("button", name="Run").click()
        result = entry.locator(f".run li[data-device-id='{device_id}']")
        await result.wait_for(timeout=15_000)
        assert await result.get_attribute("data-status") == "applied", await result.inner_text()
        assert "Desk lamp: Applied" in await result.inner_text()
        offline = entry.locator(f".run li[data-device-id='{plug['id']}']")
        assert await offline.get_attribute("data-status") == "offline", await offline.inner_text()
        assert "Porch plug: Offline: it will be applied when the device is back" in await offline.inner_text()
        await entry.get_by_text("Some devices did not apply the scene.").wait_for()
        await screens.shot(page, "scene-run")
        home_url = page.url.replace("/scenes", "")

        # Another person, in another browser context, sees nothing of it.
        other_context = await browser.new_context(viewport={"width": 1280, "height": 900})
        other = screens.watch(await other_context.new_page(), "other")
        await sign_up_in_browser(other, base, "Bob")
        await other.get_by_text("You are not in any home yet").wait_for()
        assert await other.locator("#homes article").count() == 0
        await other.goto(f"{base}/console/#/devices/{device_id}")
        await other.get_by_text("This device does not exist, or you do not have access to it.").wait_for()
        await screens.shot(other, "other-person-device")
        await other.goto(home_url)
        await other.get_by_text("This home does not exist, or you are not a member of it.").wait_for()
        assert await other.locator("article.card").count() == 0
        await screens.shot(other, "other-person-home")

        # The owner's page is still live after all that.
        await page.goto(home_url)
        await card.locator("[data-prop=on][data-value=false]").wait_for(timeout=10_000)
        await owner_context.close()
        await other_context.close()
