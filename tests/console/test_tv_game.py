"""The TV page and three phone game pads in a real browser, against a real hub.

The TV page (console/tv.html) plays a smart TV of the home: it connects as the screen with the device's id and
secret from the URL fragment, shows a pairing code and answers SPAKE2 as side B. Three phones (three people of
the home, each in a browser context of their own) sign in to the console, open the game pad (pad.html), pair
with the code the TV shows (a wrong code is refused with a message first), and play: holding a direction on a
phone moves that player's ship on the TV and no other; a phone that loses the network is paused on the TV and
resumes in the same slot when the network comes back. The remote tab's keys and app launch reach the TV too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.console.conftest import Screens, base_url
from tests.console.helpers import sign_in_in_browser
from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk.pairing import verhoeff_digit

PHONE = {"viewport": {"width": 420, "height": 860}, "has_touch": True, "is_mobile": True, "device_scale_factor": 1}


async def _member(hub: HubUnderTest, owner: Person, home_id: str, name: str) -> Person:
    person = await sign_up(hub, name)
    invitation = await owner.api.post(f"/api/v1/homes/{home_id}/invitations", json={"role": "member"})
    assert invitation.status_code == 201, invitation.text
    accepted = await person.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
    assert accepted.status_code == 200, accepted.text
    return person


async def _tv_state(tv: Any) -> dict[str, Any]:
    return dict(await tv.evaluate("window.tosGame.state()"))


async def _player(tv: Any, slot: int) -> dict[str, Any]:
    players = (await _tv_state(tv))["players"]
    return next(p for p in players if p["slot"] == slot)


async def _code(tv: Any, not_this: str | None = None) -> str:
    """The code the TV shows once the hub has opened pairing for it (a fresh one after each pairing)."""
    handle = await tv.wait_for_function(
        "(old) => { const c = window.tosGame.code(); return c && c !== old ? c : null; }", arg=not_this, timeout=10000
    )
    return str(await handle.json_value())


async def _pair(phone: Any, code: str, name: str) -> None:
    form = phone.get_by_role("form", name="Pair with a TV")
    await form.get_by_label("Pairing code").fill(f"{code[:4]} {code[4:]}")
    await form.get_by_label("This phone's name").fill(name)
    await form.get_by_role("button", name="Pair").click()


async def _hold(phone: Any, label: str, seconds: float) -> None:
    """Hold a pad button down with the mouse (pointer events, as a finger would) for ``seconds``."""
    box = await phone.get_by_role("button", name=label, exact=True).bounding_box()
    assert box is not None
    await phone.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await phone.mouse.down()
    await asyncio.sleep(seconds)
    await phone.mouse.up()


async def test_tv_page_pairs_three_phone_pads_and_plays(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    base = base_url(hub)
    owner = await sign_up(hub, "Olivia")
    people = [owner]
    try:
        home = await owner.create_home("Flat")
        tv_device = await hub.create_device("smart-tv")
        bound = await owner.bind(home["id"], await sticker_code(hub, tv_device["id"]), home["rooms"][0]["id"])
        assert bound.status_code == 201, bound.text
        people += [await _member(hub, owner, home["id"], name) for name in ("Bruno", "Chloe")]

        # The TV page, given the device's credentials in the fragment, which it removes from the address bar.
        tv_context = await browser.new_context(viewport={"width": 1280, "height": 720})
        tv = screens.watch(await tv_context.new_page(), "tv")
        await tv.goto(f"{base}/console/tv.html#device={tv_device['id']}&secret={tv_device['secret']}")
        code = await _code(tv)
        assert "secret" not in tv.url
        assert await tv.get_by_label("Pairing code").text_content() == f"{code[:4]} {code[4:]}"
        assert (await tv.get_by_role("img", name="QR code of the pairing code").get_attribute("src") or "").startswith(
            "data:image/svg+xml"
        )
        await screens.shot(tv, "tv-shows-code")

        # Three phones, three people, each signed in to the console in a browser context of their own.
        phones = []
        for person, label in zip(people, ("phone1", "phone2", "phone3"), strict=True):
            context = await browser.new_context(**PHONE)
            phone = screens.watch(await context.new_page(), label)
            await sign_in_in_browser(phone, base, person.email)
            await phone.goto(f"{base}/console/pad.html")
            await phone.get_by_role("form", name="Pair with a TV").wait_for()
            phones.append((context, phone))
        first = phones[0][1]
        await first.get_by_role("combobox", name="TV").locator("option").first.wait_for(state="attached")

        # Wrong codes are refused with a message: a typo (the check digit catches it, nothing is sent) and a
        # valid code that is not the TV's (the TV's confirmation does not match; the attempt is ended).
        message = first.get_by_role("alert")
        typo = code[:7] + str((int(code[7]) + 1) % 10)
        await _pair(first, typo, "Olivia's phone")
        await message.filter(has_text="check digit is wrong").wait_for()
        other = f"{(int(code[:7]) + 1) % 10**7:07d}"
        await _pair(first, other + verhoeff_digit(other), "Olivia's phone")
        await message.filter(has_text="The code is wrong").wait_for()
        await screens.shot(first, "wrong-code")
        assert await tv.evaluate("window.tosGame.state().players.length") == 0

        # Each phone pairs with the code the TV shows; the TV shows a new code after each pairing.
        used = None
        for slot, (_, phone) in enumerate(phones, start=1):
            code = await _code(tv, used)
            await _pair(phone, code, f"{people[slot - 1].email.split('-')[0]}'s phone")
            await phone.get_by_text(f"Player {slot}", exact=True).wait_for()
            used = code
        await tv.wait_for_function(
            "() => { const ps = window.tosGame.state().players; return ps.length === 3 && ps.every((p) => !p.paused); }"
        )
        state = await _tv_state(tv)
        assert [p["slot"] for p in state["players"]] == [1, 2, 3]
        assert [p["user_name"] for p in state["players"]] == ["Olivia", "Bruno", "Chloe"]
        assert await _code(tv, used) != used  # ready for a fourth
        await screens.shot(tv, "three-players")

        # Holding right on phone 2 moves player 2 right, and nobody else.
        before = {p["slot"]: p for p in state["players"]}
        await _hold(phones[1][1], "Right", 0.5)
        await tv.wait_for_function("() => window.tosGame.state().players[1].buttons === 0")
        after = {p["slot"]: p for p in (await _tv_state(tv))["players"]}
        assert after[2]["x"] > before[2]["x"] + 40, (before[2], after[2])
        assert after[2]["y"] == before[2]["y"]
        for slot in (1, 3):
            assert (after[slot]["x"], after[slot]["y"]) == (before[slot]["x"], before[slot]["y"])

        # Phone 3 with the keyboard: up moves player 3 up. Phone 1 shoots with A.
        await phones[2][1].keyboard.down("ArrowUp")
        await asyncio.sleep(0.4)
        await phones[2][1].keyboard.up("ArrowUp")
        await tv.wait_for_function("() => window.tosGame.state().players[2].buttons === 0")
        assert (await _player(tv, 3))["y"] < before[3]["y"] - 30
        await _hold(first, "A (shoot)", 0.1)
        await tv.wait_for_function("() => window.tosGame.state().players[0].shots >= 1")

        # Latency: the TV knows each player's hub→TV time; the phones their round trip via the TV's echoes.
        await first.wait_for_function("() => window.tosPad.state().rtt_samples >= 2", timeout=5000)
        pad = await first.evaluate("window.tosPad.state()")
        assert 0 < pad["rtt_ms"] < 1000
        assert pad["screen"]["colour"] == before[1]["colour"]
        player2 = await _player(tv, 2)
        assert player2["hub_to_screen_ms"] is not None and player2["frames"] >= 2
        await screens.shot(tv, "after-moves")
        await screens.shot(phones[1][1], "phone2-pad")

        # Idle, a pad sends only its 5 Hz heartbeat.
        seq0 = await first.evaluate("window.tosPad.state().seq")
        await asyncio.sleep(1.0)
        idle_frames = await first.evaluate("window.tosPad.state().seq") - seq0
        assert 3 <= idle_frames <= 7, idle_frames

        # Tilt steers: orientation events at about 250 Hz, each a change, go out at most 60 times a second.
        phone2 = phones[1][1]
        await phone2.get_by_label("Steer by tilting the phone").check()
        x_before = (await _player(tv, 2))["x"]
        tilted = await phone2.evaluate(
            """async () => {
              const seq0 = window.tosPad.state().seq;
              const t0 = performance.now();
              let events = 0;
              while (performance.now() - t0 < 1000) {
                const gamma = 20 + (events % 10);  // tilted right, a little differently each time
                window.dispatchEvent(new DeviceOrientationEvent('deviceorientation', { alpha: 0, beta: 0, gamma }));
                events += 1;
                await new Promise((r) => setTimeout(r, 4));
              }
              window.dispatchEvent(new DeviceOrientationEvent('deviceorientation', { alpha: 0, beta: 0, gamma: 0 }));
              return { events, frames: window.tosPad.state().seq - seq0 };
            }"""
        )
        assert tilted["events"] >= 120, tilted
        assert 30 <= tilted["frames"] <= 63, tilted
        await tv.wait_for_function("() => window.tosGame.state().players[1].frames > 0")
        await asyncio.sleep(0.1)
        assert (await _player(tv, 2))["x"] > x_before + 100
        await phone2.get_by_label("Steer by tilting the phone").uncheck()
        print(f"tilt: {tilted['events']} events in 1 s, {tilted['frames']} input frames; idle {idle_frames}/s")
        print(f"round trip phone-hub-TV-hub-phone {pad['rtt_ms']:.1f} ms, hub->TV {player2['hub_to_screen_ms']} ms")

        # Phone 3 loses the network: player 3 is paused on the TV, and its ship stays put.
        context3, phone3 = phones[2]
        await context3.set_offline(True)
        await tv.wait_for_function("() => window.tosGame.state().players[2].paused", timeout=10000)
        paused_at = await _player(tv, 3)
        await tv.get_by_role("list", name="Players").locator("li.paused").wait_for()
        await screens.shot(tv, "player3-paused")
        await screens.shot(phone3, "phone3-offline")

        # The network is back: the phone resumes its session (same slot) and plays on.
        await context3.set_offline(False)
        await tv.wait_for_function("() => !window.tosGame.state().players[2].paused", timeout=10000)
        await phone3.wait_for_function("() => window.tosPad.state().connected")
        assert (await phone3.evaluate("window.tosPad.state()"))["slot"] == 3
        await _hold(phone3, "Right", 0.4)
        await tv.wait_for_function("() => window.tosGame.state().players[2].buttons === 0")
        resumed = await _player(tv, 3)
        assert resumed["x"] > paused_at["x"] + 30 and resumed["session_id"] == paused_at["session_id"]
        await screens.shot(tv, "player3-resumed")

        # The remote tab: a key and an app launch reach the TV; the TV answers the app's state.
        await first.get_by_role("tab", name="Remote").click()
        await first.get_by_role("button", name="Volume +").click()
        await tv.get_by_role("list", name="What happened").get_by_text("pressed volume_up").wait_for()
        typing = first.get_by_role("form", name="Type on the TV")
        await typing.get_by_label("Text").fill("hello <b>TV</b>")
        await typing.get_by_role("button", name="Send").click()
        await tv.get_by_role("list", name="What happened").get_by_text("typed “hello <b>TV</b>”").wait_for()
        apps = first.get_by_role("form", name="Apps on the TV")
        await apps.get_by_role("button", name="Launch").click()
        await first.get_by_text("arena: running").wait_for()
        await apps.get_by_label("App").fill("netflix")
        await apps.get_by_role("button", name="Launch").click()
        await first.get_by_text("netflix: not_installed").wait_for()
        await screens.shot(first, "remote")

        # The console's HTTP route to the TV's apps is answered by the TV page too: stop, status, launch.
        apps_url = f"/api/v1/screens/{tv_device['id']}/apps"
        stopped = await owner.api.delete(f"{apps_url}/arena")
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped", stopped.text
        assert (await _tv_state(tv))["running"] is False
        status = await people[1].api.get(f"{apps_url}/tetris")
        assert status.status_code == 200 and status.json()["state"] == "not_installed", status.text
        launched = await owner.api.post(f"{apps_url}/arena", json={"params": {}})
        assert launched.status_code == 200 and launched.json()["state"] == "running", launched.text
        assert (await _tv_state(tv))["running"] is True
        await screens.shot(tv, "final")
    finally:
        for person in people:
            await person.api.aclose()


async def test_arena_rules(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    """The game's rules on the TV page's Arena, stepped by hand: the stick beats the D-pad, a hit scores for the
    shooter and sends the target home, a paused player neither moves nor can be hit, stale frames are dropped."""
    page = screens.watch(await (await browser.new_context()).new_page(), "page")
    await page.goto(f"{base_url(hub)}/console/blank.html")
    result = await page.evaluate(
        """async () => {
          const { Arena, BUTTONS } = await import('/console/js/tv-game.js');
          const arena = new Arena(null);
          const hits = [];
          arena.onHit = (shooter, target) => hits.push([shooter.slot, target.slot]);
          const a = arena.join({ session_id: 's1', slot: 1, user_name: 'A', name: 'pa', state: 'connected' });
          const b = arena.join({ session_id: 's2', slot: 2, user_name: 'B', name: 'pb', state: 'connected' });
          const out = {};
          // The D-pad: right for half a second at 240 px/s.
          let t = 100;
          const x0 = a.x;
          const sent = Date.now();
          arena.input({ session_id: 's1', seq: 1, t_sent: sent, t_hub: sent, buttons: BUTTONS.right, axes: [0, 0] });
          for (let i = 0; i < 30; i++) arena.step(1 / 60, (t += 1 / 60));
          out.dpad_dx = Math.round(a.x - x0);
          // The stick wins over the D-pad: left stick while right is held.
          const x1 = a.x;
          arena.input({ session_id: 's1', seq: 2, buttons: BUTTONS.right, axes: [-1, 0] });
          for (let i = 0; i < 30; i++) arena.step(1 / 60, (t += 1 / 60));
          out.stick_dx = Math.round(a.x - x1);
          // A stale frame (seq not newer) changes nothing.
          out.stale = arena.input({ session_id: 's1', seq: 2, buttons: BUTTONS.up, axes: [] }) === null;
          // Line B up in front of A and shoot: a hit, one point, B sent back to its start.
          arena.input({ session_id: 's1', seq: 3, buttons: 0, axes: [0.5, 0] });
          arena.step(1 / 60, (t += 1 / 60));
          b.x = a.x + 200; b.y = a.y;
          arena.input({ session_id: 's2', seq: 1, buttons: BUTTONS.right, axes: [] });  // held when the phone drops
          arena.pause('s2', true);
          arena.input({ session_id: 's1', seq: 4, buttons: BUTTONS.a, axes: [] });
          for (let i = 0; i < 40; i++) arena.step(1 / 60, (t += 1 / 60));
          out.paused_hit = a.score;  // a paused player cannot be hit
          out.paused_moved = b.x !== a.x + 200;
          arena.pause('s2', false);
          b.x = a.x + 200; b.y = a.y;
          arena.input({ session_id: 's1', seq: 5, buttons: 0, axes: [] });
          arena.step(1 / 60, (t += 1));
          arena.input({ session_id: 's1', seq: 6, buttons: BUTTONS.a, axes: [] });
          for (let i = 0; i < 40; i++) arena.step(1 / 60, (t += 1 / 60));
          out.score = a.score;
          out.hits = hits;
          out.b_home = Math.round(b.x) !== Math.round(a.x + 200);
          arena.leave('s2');
          out.left = arena.state().players.map((p) => p.slot);
          return out;
        }"""
    )
    assert 110 <= result["dpad_dx"] <= 130, result
    assert -130 <= result["stick_dx"] <= -110, result
    assert result["stale"] is True
    assert result["paused_hit"] == 0 and result["paused_moved"] is False, result
    assert result["score"] >= 1 and result["hits"][0] == [1, 2] and result["b_home"], result
    assert result["left"] == [1]
