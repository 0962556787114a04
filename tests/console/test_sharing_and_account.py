"""Sharing a home through an invitation link, the device page's chart, and the account page."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tests.console.conftest import Screens, base_url
from tests.console.helpers import PASSWORD, new_email, person_api, sign_in_in_browser, sticker_code
from tests.support.hubs import HubUnderTest


async def test_invitation_link_members_chart_and_account(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    base = base_url(hub)
    email, owner_api = await person_api(hub, "Owner")
    try:
        home = (await owner_api.post("/api/v1/homes", json={"name": "Shared flat", "rooms": ["Kitchen"]})).json()
        device = await hub.create_device("smart-plug")
        code = await sticker_code(hub, device["id"])
        bound = await owner_api.post(
            f"/api/v1/homes/{home['id']}/devices/bind", json={"code": code, "name": "Kettle plug"}
        )
        assert bound.status_code == 201, bound.text
    finally:
        await owner_api.aclose()
    # Some readings of the last hour for the chart.
    now = int(time.time() * 1000)
    async with hub.device_client(device) as mqtt:
        readings = [{"ts": now - (30 - i) * 60_000, "values": {"power_w": 1000.0 + 10 * i}} for i in range(30)]
        await mqtt.publish(f"tos/v1/{device['id']}/telemetry", orjson.dumps(readings), qos=1)
    await hub.settle()

    owner_context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = screens.watch(await owner_context.new_page(), "owner")
    await sign_in_in_browser(page, base, email, then=f"/homes/{home['id']}/members")

    # The owner invites a member: the code is shown once, with a link to copy.
    invite = page.get_by_role("form", name="Invite")
    await invite.get_by_role("button", name="Create invitation").click()
    link_box = page.get_by_role("textbox", name="Invitation link")
    await link_box.wait_for()
    link = await link_box.input_value()
    assert "/console/#/invite/" in link, link
    await page.get_by_text("It is shown only now").wait_for()
    await screens.shot(page, "invitation-created")

    # Someone without an account opens the link: sign-up first, then back to the invitation, and in.
    guest_context = await browser.new_context(viewport={"width": 390, "height": 844})
    guest = screens.watch(await guest_context.new_page(), "invitee")
    await guest.goto(link)
    await guest.wait_for_url("**/#/signin")
    await guest.get_by_role("link", name="Create an account").click()
    signup = guest.get_by_role("form", name="Create account")
    await signup.get_by_label("Name").fill("Carol")
    await signup.get_by_label("E-mail").fill(new_email("carol"))
    await signup.get_by_label("Password").fill(PASSWORD)
    await signup.get_by_role("button", name="Create account").click()
    await guest.get_by_role("heading", name="Invitation").wait_for()
    await screens.shot(guest, "invitation-page")
    await guest.get_by_role("button", name="Join the home").click()
    await guest.get_by_role("heading", name="Shared flat").wait_for()
    await guest.locator("article.card", has_text="Kettle plug").wait_for()
    await screens.shot(guest, "joined")

    # The owner sees the new member and may change their role.
    await page.reload()
    await page.get_by_role("cell", name="Carol").first.wait_for()
    await page.get_by_label("Role of Carol").select_option("guest")
    access = page.get_by_role("form", name="Guest access of Carol")
    await access.get_by_label("Carol may use Kettle plug").check()
    await access.get_by_role("button", name="Save guest access").click()
    await page.get_by_text("Role changed").wait_for()
    home_now = (await hub.api.get(f"/api/v1/homes/{home['id']}")).json()
    carol = next(m for m in home_now["members"] if m["name"] == "Carol")
    assert carol["role"] == "guest" and carol["devices"] == [device["id"]], carol
    await screens.shot(page, "members")

    # The owner's audit log says, in words, what happened in the home.
    await page.get_by_role("navigation", name="Home").get_by_role("link", name="Audit log").click()
    await page.get_by_role("cell", name="Accepted an invitation").wait_for()
    await page.get_by_role("cell", name="Changed a member\u2019s role").wait_for()
    await screens.shot(page, "audit")

    # The device page: chart of the last hour (uPlot), twin, commands.
    await page.goto(f"{base}/console/#/devices/{device['id']}")
    await page.get_by_role("heading", name="Kettle plug").wait_for()
    await page.locator(".chart canvas").wait_for()
    await page.get_by_role("button", name="Last 15 min").click()
    await page.locator(".chart canvas").wait_for()
    await screens.shot(page, "device-page")

    # The account page: an API key shown once, listed, revoked; sessions; signing out everywhere.
    await page.goto(f"{base}/console/#/account")
    await page.get_by_role("textbox", name="Key name").fill("Home Assistant")
    await page.get_by_role("button", name="Create key").click()
    key = await page.get_by_role("textbox", name="New API key").input_value()
    assert len(key) > 20
    await page.get_by_role("cell", name="Home Assistant").wait_for()
    with_key = await hub.api.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert with_key.status_code == 200 and with_key.json()["email"] == email
    await page.get_by_text("(this one)").wait_for()
    await screens.shot(page, "account")
    await page.get_by_role("row", name="Home Assistant").get_by_role("button", name="Revoke").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    await page.get_by_text("No API keys").wait_for()
    revoked = await hub.api.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401

    await page.get_by_role("button", name="Sign out everywhere").click()
    await page.get_by_role("dialog").get_by_role("button", name="Sign out everywhere").click()
    await page.wait_for_url("**/#/signin")
    await page.reload()
    await page.wait_for_selector("body[data-ready]")
    assert page.url.endswith("#/signin"), page.url
    await owner_context.close()
    await guest_context.close()
