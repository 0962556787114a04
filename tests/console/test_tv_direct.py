"""The direct path phone → TV in a real browser: a WebRTC data channel between the game pad and the TV page.

Two people's phones pair with the TV page as in ``test_tv_game.py``; each offers the TV a data channel through
the session sockets, and once it is open its input frames go over it: a held button moves that player while the
hub relays no new frame of that session. A phone whose channel is closed falls back to the hub at once and still
plays; the other stays direct. The phones report their round trip to the TV, which shows it with each path.

Chromium is started with ``WebRtcHideLocalIpsWithMdns`` off: a real network resolves the ``.local`` names that
browsers put in place of host addresses, this machine's network does not.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, Screens, base_url
from tests.console.helpers import sign_in_in_browser
from tests.console.test_tv_game import PHONE, _code, _hold, _member, _pair, _player, _tv_state
from tests.support.hubs import HubUnderTest
from tests.support.people import sign_up, sticker_code
from tests.support.services import unavailable

BOTH_DIRECT = """() => {
  const ps = window.tosGame.state().players;
  return ps.length === 2 && ps.every((p) => p.direct && p.path === 'direct');
}"""


@pytest.fixture
async def lan_browser() -> AsyncIterator[Any]:
    """Chromium as on a home network: WebRTC host candidates with their addresses."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    args = [*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"]
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield launched
        finally:
            await launched.close()


async def test_phones_play_over_a_direct_channel_and_fall_back_to_the_hub(
    hub: HubUnderTest, lan_browser: Any, screens: Screens
) -> None:
    base = base_url(hub)
    owner = await sign_up(hub, "Olivia")
    people = [owner]
    try:
        home = await owner.create_home("Flat")
        tv_device = await hub.create_device("smart-tv")
        bound = await owner.bind(home["id"], await sticker_code(hub, tv_device["id"]), home["rooms"][0]["id"])
        assert bound.status_code == 201, bound.text
        people.append(await _member(hub, owner, home["id"], "Bruno"))

        tv_context = await lan_browser.new_context(viewport={"width": 1280, "height": 720})
        tv = screens.watch(await tv_context.new_page(), "tv")
        await tv.goto(f"{base}/console/tv.html#device={tv_device['id']}&secret={tv_device['secret']}")
        phones = []
        used = None
        for slot, person in enumerate(people, start=1):
            context = await lan_browser.new_context(**PHONE)
            phone = screens.watch(await context.new_page(), f"phone{slot}")
            await sign_in_in_browser(phone, base, person.email)
            await phone.goto(f"{base}/console/pad.html")
            await phone.get_by_role("combobox", name="TV").locator("option").first.wait_for(state="attached")
            used = await _code(tv, used)
            await _pair(phone, used, f"phone {slot}")
            await phone.get_by_text(f"Player {slot}", exact=True).wait_for()
            phones.append(phone)

        # Both phones open a direct channel, and their frames (the 5 Hz heartbeat at least) come over it.
        for phone in phones:
            await phone.wait_for_function("() => window.tosPad.state().direct === 'open'", timeout=10000)
        await tv.wait_for_function(BOTH_DIRECT, timeout=5000)
        controllers = hub.hub.sessions.controllers
        sessions = [await phone.evaluate("window.tosPad.state().session_id") for phone in phones]
        relayed = [controllers[s].stats.relayed for s in sessions]
        await screens.shot(tv, "both-direct")

        # Phone 1 holds Right: its player moves, the other does not, and the hub relays no frame of it.
        before = {p["slot"]: p for p in (await _tv_state(tv))["players"]}
        await _hold(phones[0], "Right", 0.5)
        await tv.wait_for_function("() => window.tosGame.state().players[0].buttons === 0")
        after = {p["slot"]: p for p in (await _tv_state(tv))["players"]}
        assert after[1]["x"] > before[1]["x"] + 40, (before[1], after[1])
        assert (after[2]["x"], after[2]["y"]) == (before[2]["x"], before[2]["y"])
        assert after[1]["direct_frames"] > before[1]["direct_frames"] + 2
        assert after[1]["direct_ms"] is not None and after[1]["path"] == "direct"
        assert [controllers[s].stats.relayed for s in sessions] == relayed  # nothing through the hub

        # The round trip each phone measures (echoes come back on the path the frame took) reaches the TV.
        await tv.wait_for_function(
            "() => window.tosGame.state().players.every((p) => p.rtt_ms !== null && p.rtt_direct_ms !== null)",
            timeout=5000,
        )
        pad = await phones[0].evaluate("window.tosPad.state()")
        assert pad["path"] == "direct" and 0 < pad["rtt_direct_ms"] < 1000, pad
        shown = await _player(tv, 1)
        print(
            f"round trip direct {pad['rtt_direct_ms']:.1f} ms, via hub {pad['rtt_hub_ms'] or 0:.1f} ms; "
            f"phone->TV direct {shown['direct_ms']} ms, via hub {shown['one_way_ms']} ms"
        )
        assert await tv.get_by_role("list", name="Players").get_by_text("direct", exact=True).count() == 2
        await screens.shot(tv, "moved-direct")
        await screens.shot(phones[0], "phone1-direct")

        # Phone 2's channel is closed: it falls back to the hub at once, and still plays; phone 1 stays direct.
        await phones[1].evaluate("window.tosPad.dropDirect()")
        await phones[1].wait_for_function("() => window.tosPad.state().path === 'hub'", timeout=1000)
        await tv.wait_for_function(
            "() => { const p = window.tosGame.state().players[1]; return p.path === 'hub' && !p.direct; }",
            timeout=2000,
        )
        x2 = (await _player(tv, 2))["x"]
        relayed2 = controllers[sessions[1]].stats.relayed
        await _hold(phones[1], "Right", 0.4)
        await tv.wait_for_function("() => window.tosGame.state().players[1].buttons === 0")
        moved = await _player(tv, 2)
        assert moved["x"] > x2 + 30 and moved["path"] == "hub", moved
        assert controllers[sessions[1]].stats.relayed > relayed2 + 2
        assert controllers[sessions[1]].stats.stale == 0  # one seq across both paths: nothing refused as old
        fell_back = await phones[1].evaluate("window.tosPad.state()")
        hub_ms, direct_ms = fell_back["rtt_hub_ms"], fell_back["rtt_direct_ms"]
        print(f"phone 2 round trip via hub {hub_ms:.1f} ms (direct before: {direct_ms:.1f} ms)")
        assert (await _player(tv, 1))["path"] == "direct"
        assert controllers[sessions[0]].stats.relayed == relayed[0]
        assert await tv.evaluate("window.tosGame.direct()") == [{"session_id": sessions[0], "channel": "open"}]
        assert (await phones[1].evaluate("window.tosPad.state()"))["direct"] == "off"  # tries again later
        await tv.get_by_role("list", name="Players").get_by_text("via hub", exact=True).wait_for()
        await screens.shot(tv, "phone2-via-hub")
        await screens.shot(phones[1], "phone2-via-hub")
    finally:
        for person in people:
            await person.api.aclose()


async def test_direct_frames_are_checked_and_share_one_seq_with_the_hub(
    hub: HubUnderTest, lan_browser: Any, screens: Screens
) -> None:
    """The TV checks a direct frame as the hub checks a relayed one; both paths feed one newest-wins rule."""
    page = screens.watch(await (await lan_browser.new_context()).new_page(), "page")
    await page.goto(f"{base_url(hub)}/console/blank.html")
    result = await page.evaluate(
        """async () => {
          const { Arena, BUTTONS, frameProblem } = await import('/console/js/tv-game.js');
          const ok = { seq: 1, t_sent: Date.now(), buttons: 5, axes: [0, -1] };
          const bad = [
            null, [], { ...ok, seq: -1 }, { ...ok, seq: 1.5 }, { ...ok, t_sent: 'now' }, { ...ok, buttons: 2 ** 32 },
            { ...ok, buttons: true }, { ...ok, axes: new Array(9).fill(0) }, { ...ok, axes: [0, 1.5] },
            { ...ok, axes: 'up' },
          ].map(frameProblem);
          const arena = new Arena(null);
          arena.join({ session_id: 's1', slot: 1, user_name: 'A', name: 'pa', state: 'connected' });
          const t = Date.now();
          const applied = [
            arena.input({ session_id: 's1', seq: 1, t_sent: t, t_hub: t, buttons: 1, axes: [] }, t, 'hub'),
            arena.input({ session_id: 's1', seq: 2, t_sent: t, buttons: BUTTONS.right, axes: [] }, t + 3, 'direct'),
            arena.input({ session_id: 's1', seq: 2, t_sent: t, t_hub: t, buttons: 0, axes: [] }, t, 'hub'),
            arena.input({ session_id: 's1', seq: 3, t_sent: t, t_hub: t, buttons: 0, axes: [] }, t + 1, 'hub'),
            arena.input({ session_id: 's1', seq: 3, t_sent: t, buttons: 9, axes: [] }, t, 'direct'),
          ].map(Boolean);
          arena.setDirect('s1', true);
          arena.report('s1', { rtt_ms: 4.5, rtt_hub_ms: 9, rtt_direct_ms: 'fast' });
          return { ok: frameProblem(ok), bad, applied, player: arena.state().players[0] };
        }"""
    )
    assert result["ok"] is None
    assert None not in result["bad"], result["bad"]
    assert result["applied"] == [True, True, False, True, False]  # a seq seen on either path is not taken again
    player = result["player"]
    assert (player["seq"], player["buttons"], player["path"]) == (3, 0, "hub")
    assert (player["hub_frames"], player["direct_frames"], player["direct_ms"]) == (2, 1, 3.0)
    assert (player["direct"], player["rtt_ms"], player["rtt_hub_ms"], player["rtt_direct_ms"]) == (True, 4.5, 9, None)
