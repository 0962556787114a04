"""The Talk page in a real browser against a real hub: Chromium's fake microphone plays a command synthesized
with espeak-ng, the page records it through push-to-talk (resampled to 16 kHz in the browser, streamed over the
voice WebSocket), shows what was heard, the intent and the answer, plays the spoken answer, and the light's
desired state changes in its twin. The typed box gives the same result; the owner picks the engine on the page;
a member sees the settings but cannot change them, and a browser without a usable microphone says so in words.

The owner picks Whisper on the page and then the default pocketsphinx engine again, and the spoken command goes
through pocketsphinx with the home's grammar: Whisper base sometimes writes this synthesised phrase as "live in
room light", depending on how the browser's capture cuts the audio."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, Screens, base_url
from tests.console.helpers import person_api, sign_in_in_browser, sticker_code
from tests.support.hubs import HubUnderTest
from tests.support.services import unavailable
from tosplus.services.voice.audio import Audio, load
from tosplus.services.voice.stt import normalize
from tosplus.services.voice.tts import EspeakTTS

PHONE = {"width": 390, "height": 844}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
COMMAND = "turn on the living room light"


async def command_wav(directory: Path) -> Path:
    """The command as Chromium's fake microphone wants it (16-bit PCM WAV), with quiet before it and a long quiet
    after: Chromium plays the file in a loop, and the hub must hear the end of speech before it comes again."""
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    speech = load((await EspeakTTS().synthesize(COMMAND, language="en")).wav)
    path = directory / "command.wav"
    path.write_bytes((Audio.silence(0.4) + speech + Audio.silence(3.0)).wav())
    return path


@contextlib.asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *args]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def light_home(hub: HubUnderTest, owner: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    home = (await owner.post("/api/v1/homes", json={"name": "Flat", "rooms": ["Living room", "Kitchen"]})).json()
    lamp = await hub.create_device("light")
    room_id = next(r["id"] for r in home["rooms"] if r["name"] == "Living room")
    body = {"code": await sticker_code(hub, lamp["id"]), "room_id": room_id, "name": "Ceiling light"}
    bound = await owner.post(f"/api/v1/homes/{home['id']}/devices/bind", json=body)
    assert bound.status_code == 201, bound.text
    return home, lamp


async def desired(person: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    return dict((await person.get(f"/api/v1/devices/{device_id}/twin")).json()["desired"]["state"])


async def test_push_to_talk_typed_requests_and_the_engine_setting(
    hub: HubUnderTest, screens: Screens, tmp_path: Path
) -> None:
    whisper = next((n for n in hub.hub.voice.engines if n.startswith("whisper")), None)
    if whisper is None:
        unavailable("the whisper extra is not installed (pip install -e '.[test]')")
    wav = await command_wav(tmp_path)
    base = base_url(hub)
    email, owner = await person_api(hub, "Robin")
    fake_microphone = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    )
    async with contextlib.aclosing(owner), chromium(*fake_microphone) as browser:
        home, lamp = await light_home(hub, owner)
        settings_url = f"/api/v1/voice/homes/{home['id']}/settings"
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = screens.watch(await context.new_page(), "robin")
        warnings: list[str] = []
        page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
        await sign_in_in_browser(page, base, email, then=f"/homes/{home['id']}")
        await page.get_by_role("navigation", name="Home").get_by_role("link", name="Talk").click()
        await page.get_by_role("heading", name="Talk to Flat").wait_for()
        talk = page.get_by_role("button", name="Hold to talk")

        # The owner picks Whisper for English; the home's settings change.
        engine = page.get_by_label("Speech engine")
        assert await engine.input_value() == "pocketsphinx"
        await engine.select_option(whisper)
        for _ in range(50):
            if (await owner.get(settings_url)).json()["engines"]["en"] == whisper:
                break
            await page.wait_for_timeout(100)
        assert (await owner.get(settings_url)).json()["chosen"] == {"en": whisper}
        await screens.shot(page, "talk-page")
        await engine.select_option("pocketsphinx")  # and back to the default, which the spoken command uses
        for _ in range(50):
            if (await owner.get(settings_url)).json()["engines"]["en"] == "pocketsphinx":
                break
            await page.wait_for_timeout(100)
        assert (await owner.get(settings_url)).json()["engines"]["en"] == "pocketsphinx"

        # Hold the button while the fake microphone says the command; the hub hears the end of speech.
        await talk.hover()
        await page.mouse.down()
        heard = page.locator("[data-talk=heard]")
        await page.get_by_role("button", name="Listening… let go (or click) to stop").wait_for(timeout=5000)
        await screens.shot(page, "listening")
        for _ in range(300):  # up to 30 s: the hub hears the end of speech, then the engine writes it down
            if (await heard.text_content() or "…") != "…":
                break
            await page.wait_for_timeout(100)
        await page.mouse.up()
        assert normalize(await heard.text_content() or "").startswith(COMMAND)  # "... light" or "... lights"
        intent = page.locator("[data-talk=intent]")
        await page.locator("[data-talk=intent][data-intent=HassTurnOn]").wait_for(timeout=15000)
        assert "area: Living room" in (await intent.text_content() or "")
        answer = page.locator("[data-talk=answer]")
        assert "Ceiling light" in (await answer.text_content() or "")
        await page.locator("audio.talk-player:not([hidden])").wait_for(timeout=15000)  # the spoken answer
        assert (await page.locator("audio.talk-player").get_attribute("src") or "").startswith("blob:")
        await talk.wait_for()  # the button is back to "Hold to talk"
        assert await desired(owner, lamp["id"]) == {"on": True}
        assert not [w for w in warnings if "AudioWorklet" in w], warnings  # recorded on the audio thread
        await screens.shot(page, "spoken-command-done")

        # The typed alternative: the same result, both in the history.
        typed = page.get_by_role("form", name="Type a request")
        await typed.get_by_label("Or type a request").fill("turn off the ceiling light")
        await typed.get_by_role("button", name="Send").click()
        await page.locator("[data-talk=intent][data-intent=HassTurnOff]").wait_for()
        assert await desired(owner, lamp["id"]) == {"on": False}
        await typed.get_by_label("Or type a request").fill("order a large pizza")
        await typed.get_by_role("button", name="Send").click()
        await page.locator("[data-talk=intent]", has_text="Not understood").wait_for()
        history = page.get_by_role("list", name="Earlier requests").get_by_role("listitem")
        assert await history.count() == 3
        texts = await history.all_text_contents()
        assert "order a large pizza" in texts[0] and "turn off the ceiling light" in texts[1]
        assert "spoken" in texts[2] and "living room light" in texts[2].lower()
        await screens.shot(page, "typed-and-history")

        await page.set_viewport_size(PHONE)
        await page.wait_for_timeout(200)
        overflow = await page.evaluate(OVERFLOW)
        shot = await screens.shot(page, "phone")
        assert overflow <= 0, f"the Talk page scrolls sideways by {overflow}px at 390px wide (see {shot})"
        await context.close()


async def test_a_member_sees_the_settings_and_a_refused_microphone_is_said_in_words(
    hub: HubUnderTest, screens: Screens
) -> None:
    base = base_url(hub)
    _owner_email, owner = await person_api(hub, "Robin")
    member_email, member = await person_api(hub, "Sam")
    # A microphone exists, but nobody answers the browser's permission prompt: headless Chromium refuses it.
    async with (
        contextlib.aclosing(owner),
        contextlib.aclosing(member),
        chromium("--use-fake-device-for-media-stream") as browser,
    ):
        home, _lamp = await light_home(hub, owner)
        invitation = await owner.post(f"/api/v1/homes/{home['id']}/invitations", json={"role": "member"})
        joined = await member.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
        assert joined.status_code == 200, joined.text
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = screens.watch(await context.new_page(), "sam")
        await sign_in_in_browser(page, base, member_email, then=f"/homes/{home['id']}/talk")
        await page.get_by_role("heading", name="Talk to Flat").wait_for()
        assert await page.get_by_label("Speech engine").is_disabled()
        assert await page.get_by_label("Language").is_disabled()
        await page.get_by_text("Only the home\N{RIGHT SINGLE QUOTATION MARK}s owners can change these.").wait_for()
        refused = await member.patch(f"/api/v1/voice/homes/{home['id']}/settings", json={"speak": False})
        assert refused.status_code == 403, refused.text

        await page.get_by_role("button", name="Hold to talk").click()
        problem = page.locator(".talk-problem [role=alert]")
        await problem.wait_for(timeout=10000)
        words = await problem.text_content() or ""
        assert "The browser was not allowed to use the microphone" in words, words
        await page.get_by_role("button", name="Hold to talk").wait_for()  # ready to try again
        await screens.shot(page, "microphone-refused")

        typed = page.get_by_role("form", name="Type a request")
        await typed.get_by_label("Or type a request").fill("turn on the ceiling light")
        await typed.get_by_role("button", name="Send").click()
        await page.locator("[data-talk=intent][data-intent=HassTurnOn]").wait_for()
        await context.close()
