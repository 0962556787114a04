"""The console on a phone-sized screen, and errors shown to the person in words."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Screens, base_url
from tests.console.helpers import person_api, sign_in_in_browser, sticker_code
from tests.support.hubs import HubUnderTest

PHONE = {"width": 390, "height": 844}

OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def test_phone_sized_pages_do_not_scroll_sideways(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    email, person = await person_api(hub, "Phone")
    try:
        long_name = "A home with a rather long name"
        home = (await person.post("/api/v1/homes", json={"name": long_name, "rooms": ["Living room"]})).json()
        room = home["rooms"][0]["id"]
        names = ["Ceiling light in the living room by the window", "Thermostat", "Plug", "Fridge", "TV"]
        for product, name in zip(["light", "thermostat", "smart-plug", "fridge", "smart-tv"], names, strict=True):
            device = await hub.create_device(product)
            bound = await person.post(
                f"/api/v1/homes/{home['id']}/devices/bind",
                json={"code": await sticker_code(hub, device["id"]), "room_id": room, "name": name},
            )
            assert bound.status_code == 201, bound.text
            if product == "light":
                light_id = device["id"]
        device_id = device["id"]
        scene = await person.post(
            f"/api/v1/homes/{home['id']}/scenes",
            json={"name": "Evening", "actions": [{"device_id": light_id, "desired": {"on": True, "brightness": 30}}]},
        )
        assert scene.status_code == 201, scene.text
    finally:
        await person.aclose()

    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = screens.watch(await context.new_page())
    base = base_url(hub)
    await sign_in_in_browser(page, base, email)
    for path, ready in [
        (f"/homes/{home['id']}", "article.card >> nth=4"),
        (f"/devices/{device_id}", "text=Refused messages"),
        (f"/homes/{home['id']}/members", "text=Invite someone"),
        (f"/homes/{home['id']}/scenes/new", "text=Save scene"),
        (f"/homes/{home['id']}/scenes", "text=Evening"),
        (f"/homes/{home['id']}/scenes/{scene.json()['id']}", "text=Save scene"),
        (f"/homes/{home['id']}/bind", "text=Binding code"),
        (f"/homes/{home['id']}/rooms", "text=Add a room"),
        (f"/homes/{home['id']}/audit", "text=Added a device"),
        ("/account", "text=API keys"),
        ("/", "text=A home with a rather long name"),
        ("/audit", "text=for operators"),
    ]:
        await page.goto(f"{base}/console/#{path}")
        await page.locator(ready).first.wait_for()
        await page.wait_for_timeout(150)  # late layout (charts, fonts)
        overflow = await page.evaluate(OVERFLOW)
        shot = await screens.shot(page, "phone-" + path.strip("/").replace("/", "-")[:40])
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px wide (see {shot})"
    await context.close()


async def test_errors_are_shown_in_words(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    email, person = await person_api(hub, "Errors")
    try:
        home = (await person.post("/api/v1/homes", json={"name": "Home", "rooms": []})).json()
    finally:
        await person.aclose()
    page = screens.watch(await browser.new_page(viewport={"width": 1024, "height": 768}))
    base = base_url(hub)

    # A wrong password: the hub's problem detail, not a status code or JSON.
    await page.goto(f"{base}/console/#/signin")
    form = page.get_by_role("form", name="Sign in")
    await form.get_by_label("E-mail").fill(email)
    await form.get_by_label("Password").fill("not the password")
    await form.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    words = await alert.inner_text()
    assert words and "{" not in words and "Traceback" not in words, words
    await screens.shot(page, "wrong-password")

    # A binding code no device is waiting with: the hub's words (RFC 7807 detail).
    await sign_in_in_browser(page, base, email, then=f"/homes/{home['id']}/bind")
    bind = page.get_by_role("form", name="Add a device")
    await bind.get_by_label("Binding code").fill("7K3M-9QXD")
    await bind.get_by_role("button", name="Add device").click()
    await page.get_by_role("alert").filter(has_text="no device is waiting with this code").wait_for()
    await screens.shot(page, "wrong-code")

    # A code that cannot be one is explained before anything is sent.
    await bind.get_by_label("Binding code").fill("ILOU-1234")
    await bind.get_by_role("button", name="Add device").click()
    await page.get_by_role("alert").filter(has_text="A binding code has 8 letters and digits").wait_for()

    # The hub unreachable: said so, in words.
    await page.route("**/api/v1/homes/**", lambda route: route.abort("connectionrefused"))
    await page.goto(f"{base}/console/#/homes/{home['id']}/rooms")
    await page.get_by_text("The hub cannot be reached").wait_for()
    await screens.shot(page, "unreachable")
    assert "Traceback" not in await page.content()
