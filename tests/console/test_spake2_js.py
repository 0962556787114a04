"""The browser's SPAKE2 (console js/spake2.js) against the Python ``spake2`` package, in Chromium.

The TV page is SPAKE2's side B and the phone page side A, and either may meet a Python peer (the SDK's
``ScreenLink``, ``SimController``), so each direction is checked: same key with the same password, different
keys with a different one, and the TOS+ key schedule (confirmations, session key, credential) agreeing with
``tosplus.sdk.pairing``. The code rules of js/verhoeff.js are checked against the Python ones on many codes.
"""

from __future__ import annotations

import base64
import random
from typing import Any

from spake2 import SPAKE2_A, SPAKE2_B
from spake2.parameters.ed25519 import ParamsEd25519

from tests.console.conftest import Screens, base_url
from tests.support.hubs import HubUnderTest
from tosplus.sdk.pairing import (
    ControllerPairing,
    PairingError,
    ScreenPairing,
    b64,
    generate_code,
    is_trivial,
    unb64,
    verhoeff_digit,
    verhoeff_valid,
)

ID_A = "tosplus controller"

# Runs in the page: the module's functions under one name, bytes as base64 across the boundary.
LOAD = """async () => {
  window.S = await import('/console/js/spake2.js');
  window.V = await import('/console/js/verhoeff.js');
}"""
START = """([side, password, idA, idB]) => {
  window.peer = new S.Spake2(side, password, { idA, idB });
  return S.b64(window.peer.start());
}"""
FINISH = "(message) => S.b64(window.peer.finish(S.unb64(message)))"


async def _page(hub: HubUnderTest, browser: Any, screens: Screens) -> Any:
    context = await browser.new_context()
    page = screens.watch(await context.new_page(), "page")
    await page.goto(f"{base_url(hub)}/console/blank.html")
    await page.evaluate(LOAD)
    return page


async def test_js_and_python_spake2_agree_in_both_directions(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    page = await _page(hub, browser, screens)
    id_b = "tosplus screen dev-1"

    # The group's fixed elements and the password scalar are python-spake2's.
    m, n = await page.evaluate("[S.hex(S.params.M), S.hex(S.params.N)]")
    assert m == ParamsEd25519.M.to_bytes().hex()
    assert n == ParamsEd25519.N.to_bytes().hex()
    scalar = await page.evaluate("S.passwordToScalar('code:48213579').toString(16)")
    assert int(scalar, 16) == ParamsEd25519.group.password_to_scalar(b"code:48213579")

    for round_ in range(3):
        password = f"code:{generate_code()}"
        # JS is A (the phone page), Python is B (a TV running the SDK).
        msg_a = await page.evaluate(START, ["A", password, ID_A, id_b])
        python_b = SPAKE2_B(password.encode(), idA=ID_A.encode(), idB=id_b.encode())
        msg_b = python_b.start()
        key_b = python_b.finish(base64.b64decode(msg_a))
        key_a = await page.evaluate(FINISH, b64(msg_b))
        assert base64.b64decode(key_a) == key_b, round_

        # Python is A (a phone running the SDK), JS is B (the TV page).
        python_a = SPAKE2_A(password.encode(), idA=ID_A.encode(), idB=id_b.encode())
        msg_a_py = python_a.start()
        msg_b_js = await page.evaluate(START, ["B", password, ID_A, id_b])
        key_b_js = await page.evaluate(FINISH, b64(msg_a_py))
        assert python_a.finish(base64.b64decode(msg_b_js)) == base64.b64decode(key_b_js), round_

    # A wrong password (one digit off) gives different keys, in both directions.
    msg_a = await page.evaluate(START, ["A", "code:12345670", ID_A, id_b])
    python_b = SPAKE2_B(b"code:12345679", idA=ID_A.encode(), idB=id_b.encode())
    msg_b = python_b.start()
    key_b = python_b.finish(base64.b64decode(msg_a))
    assert base64.b64decode(await page.evaluate(FINISH, b64(msg_b))) != key_b
    python_a = SPAKE2_A(b"code:12345670", idA=ID_A.encode(), idB=id_b.encode())
    msg_a_py = python_a.start()
    msg_b_js = await page.evaluate(START, ["B", "code:12345679", ID_A, id_b])
    key_b_js = await page.evaluate(FINISH, b64(msg_a_py))
    assert python_a.finish(base64.b64decode(msg_b_js)) != base64.b64decode(key_b_js)

    # Different identities give different keys too (the screen's device id is bound into the key).
    msg_a = await page.evaluate(START, ["A", "code:12345670", ID_A, "tosplus screen dev-2"])
    python_b = SPAKE2_B(b"code:12345670", idA=ID_A.encode(), idB=id_b.encode())
    msg_b = python_b.start()
    key_b = python_b.finish(base64.b64decode(msg_a))
    assert base64.b64decode(await page.evaluate(FINISH, b64(msg_b))) != key_b

    # How long one side takes in the browser (start + finish), for the record.
    per_side_ms = await page.evaluate(
        """() => {
          const t0 = performance.now();
          for (let i = 0; i < 10; i++) {
            const a = new S.Spake2('A', 'code:12345670', {}), b = new S.Spake2('B', 'code:12345670', {});
            const ma = a.start(), mb = b.start();
            a.finish(mb); b.finish(ma);
          }
          return (performance.now() - t0) / 20;
        }"""
    )
    print(f"SPAKE2 in Chromium: {per_side_ms:.1f} ms per side (start + finish)")
    assert per_side_ms < 500

    # Bad messages are refused with a reason: our own side, a reflection, not a point, wrong length.
    refusals = await page.evaluate(
        """() => {
          const out = [];
          const tryFinish = (side, make) => {
            const p = new S.Spake2(side, 'code:12345670', {});
            const mine = p.start();
            try { p.finish(make(mine)); out.push('accepted'); } catch (e) { out.push(e.message); }
          };
          tryFinish('A', (mine) => mine);
          tryFinish('A', (mine) => { const m = mine.slice(); m[0] = 0x42; return m; });
          tryFinish('B', () => { const m = new Uint8Array(33).fill(0xff); m[0] = 0x41; return m; });
          tryFinish('B', () => new Uint8Array(10));
          return out;
        }"""
    )
    assert refusals == [
        "the message is from my own side",
        "my own message was reflected back",
        "the message is not a point of the curve",
        "a message has 33 bytes",
    ]


async def test_js_pairing_key_schedule_matches_the_sdk(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    """The phone page's steps (JS side A) with the SDK's screen, and the TV page's steps (JS side B) with the
    SDK's controller: confirmations check out, session keys and credentials are the same bytes."""
    page = await _page(hub, browser, screens)
    device_id = "tv-under-test"
    screen = ScreenPairing(device_id)
    code = screen.new_code().code
    js_a = await page.evaluate(
        """([deviceId, code]) => {
          const ids = S.identities(deviceId);
          window.peer = new S.Spake2('A', S.pairingPassword({ code }), ids);
          window.msgA = window.peer.start();
          return S.b64(window.msgA);
        }""",
        [device_id, code],
    )
    msg_b, confirm_b = screen.answer("attempt-1", unb64(js_a), new_credential_id="cred-1")
    keys = await page.evaluate(
        """([msgB]) => {
          const mb = S.unb64(msgB);
          const k = S.pairingKeys(window.peer.finish(mb), window.msgA, mb);
          return { confirmA: S.b64(k.confirmA), confirmB: S.b64(k.confirmB), session: S.b64(k.session),
                   credential: S.b64(k.credential) };
        }""",
        [b64(msg_b)],
    )
    assert unb64(keys["confirmB"]) == confirm_b
    paired = screen.verify("attempt-1", unb64(keys["confirmA"]))
    assert paired.session_key == unb64(keys["session"])
    assert paired.credential_secret == unb64(keys["credential"])

    # The TV page's side: the SDK's controller pairs with a JS screen, and a wrong code shows as wrong_code.
    for typed, right in ((code, True), (_another_valid_code(code), False)):
        controller = ControllerPairing(device_id, code=typed)
        answer = await page.evaluate(
            """([deviceId, code, msgA]) => {
              const b = new S.Spake2('B', S.pairingPassword({ code }), S.identities(deviceId));
              const mb = b.start();
              const ma = S.unb64(msgA);
              const k = S.pairingKeys(b.finish(ma), ma, mb);
              window.expected = k;
              return { msgB: S.b64(mb), confirmB: S.b64(k.confirmB) };
            }""",
            [device_id, code, b64(controller.msg_a)],
        )
        if right:
            confirm_a = controller.finish(unb64(answer["msgB"]), unb64(answer["confirmB"]))
            ok = await page.evaluate("(c) => S.equal(S.unb64(c), window.expected.confirmA)", b64(confirm_a))
            assert ok
            session = await page.evaluate("S.b64(window.expected.session)")
            assert controller.result("cred-2").session_key == unb64(session)
        else:
            try:
                controller.finish(unb64(answer["msgB"]), unb64(answer["confirmB"]))
            except PairingError as exc:
                assert exc.reason == "wrong_code"
            else:
                raise AssertionError("a wrong code was confirmed")


def _another_valid_code(code: str) -> str:
    payload = f"{(int(code[:7]) + 1) % 10**7:07d}"
    return payload + verhoeff_digit(payload)


async def test_js_code_rules_match_the_sdk(hub: HubUnderTest, browser: Any, screens: Screens) -> None:
    page = await _page(hub, browser, screens)
    rng = random.Random(7)
    # Random codes, every trivial family, and one-digit typos of valid codes.
    samples = [f"{rng.randrange(10**8):08d}" for _ in range(3000)]
    samples += [str(d) * 8 for d in range(10)] + ["12345678", "87654321", "01234567", "13579135", "12121212"]
    samples += ["11122211", "90123456", "24680246", "12341234"]
    for _ in range(500):
        payload = f"{rng.randrange(10**7):07d}"
        code = payload + verhoeff_digit(payload)
        samples.append(code)
        i = rng.randrange(8)
        samples.append(code[:i] + str((int(code[i]) + rng.randrange(1, 10)) % 10) + code[i + 1 :])
    js = await page.evaluate(
        "(codes) => codes.map((c) => [V.verhoeffValid(c), V.isTrivial(c), V.verhoeffDigit(c.slice(0, 7))])", samples
    )
    expected = [[verhoeff_valid(c), is_trivial(c), verhoeff_digit(c[:7])] for c in samples]
    assert js == expected
    assert sum(1 for c in samples if is_trivial(c)) >= 19  # the families above are really exercised

    generated = await page.evaluate("Array.from({ length: 2000 }, () => V.generateCode())")
    assert all(verhoeff_valid(c) and not is_trivial(c) for c in generated)
    assert len(set(generated)) > 1990

    checks = await page.evaluate(
        """(code) => {
          const said = (f) => { try { return f(); } catch (e) { return e.message; } };
          return [said(() => V.normaliseCode(code.slice(0, 4) + ' ' + code.slice(4))),
                  said(() => V.normaliseCode('1234')),
                  said(() => V.normaliseCode(code.slice(0, 7) + String((Number(code[7]) + 1) % 10))),
                  said(() => V.parsePairUri(V.pairUri('tv-1', code)).deviceId),
                  said(() => V.parsePairUri('http://example.com')),
                  V.grouped(code)];
        }""",
        generated[0],
    )
    assert checks == [
        generated[0],
        "A pairing code has 8 digits.",
        "This is not a pairing code (its check digit is wrong): look at the TV again.",
        "tv-1",
        "This is not a TOS+ pairing QR code.",
        f"{generated[0][:4]} {generated[0][4:]}",
    ]
