"""Pay codes, hub side: what the device shows is accepted once, and everything else is refused with its reason."""

from __future__ import annotations

import asyncio
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tosplus.errors import InvalidInput
from tosplus.sdk.paycode import PayCodeGenerator, format_code, luhn_digit, new_key, one_time_value, time_step
from tosplus.services.payments import paycode as hub_paycode
from tosplus.services.payments.paycode import (
    MemoryUsedCodes,
    PayCode,
    PayCodeError,
    PayCodeVerifier,
    Verified,
    parse,
)

TOKEN = 12345678
KEY = bytes(range(32))
T0 = 29_000_000 * 60.0 + 12.5  # 12.5 s into step 29,000,000
STEP = 29_000_000


def verifier(keys: dict[int, bytes] | None = None, **options: int) -> PayCodeVerifier:
    keys = {TOKEN: KEY} if keys is None else keys
    return PayCodeVerifier(keys.get, MemoryUsedCodes(), **options)


async def refusal(v: PayCodeVerifier, code: str, now: float = T0) -> PayCodeError:
    with pytest.raises(PayCodeError) as refused:
        await v.verify(code, now)
    return refused.value


@settings(max_examples=150)
@given(
    key=st.binary(min_size=16, max_size=64),
    token=st.integers(0, 10**8 - 1),
    now=st.floats(60.0, 4e9),
    uses=st.integers(0, 3),
    clock_offset=st.floats(-60.0, 60.0),
)
def test_what_the_device_shows_the_hub_accepts(
    key: bytes, token: int, now: float, uses: int, clock_offset: float
) -> None:
    device = PayCodeGenerator(token, key)
    for _ in range(uses):
        device.next_after_use(now + clock_offset)
    code = device.current(now + clock_offset)
    verified = asyncio.run(verifier({token: key}).verify(code, now))
    shown = Verified(token, time_step(now + clock_offset), uses)
    # Another candidate of the window may have the same value (odds 11 in 10^7); then that one was taken.
    assert verified == shown or one_time_value(key, token, verified.step, verified.counter) == parse(code).otp


async def test_a_code_is_accepted_once_and_the_next_counter_after_it() -> None:
    v, device = verifier(), PayCodeGenerator(TOKEN, KEY)
    code = device.current(T0)
    assert await v.verify(code, T0) == Verified(TOKEN, STEP, 0)
    again = await refusal(v, code, T0 + 1)
    assert again.reason == "used" and "already used" in again.detail
    assert await v.verify(device.next_after_use(T0 + 1), T0 + 2) == Verified(TOKEN, STEP, 1)
    assert (await refusal(v, code, T0 + 65)).reason == "used"  # still remembered in the next step


async def test_clock_skew_of_one_step_either_way_and_older_codes_expire() -> None:
    v, device = verifier(), PayCodeGenerator(TOKEN, KEY)
    assert await v.verify(device.current(T0 - 60), T0) == Verified(TOKEN, STEP - 1, 0)
    assert await v.verify(device.current(T0 + 60), T0) == Verified(TOKEN, STEP + 1, 0)
    three_back = await refusal(v, device.current(T0 - 180), T0)
    assert three_back.reason == "expired" and "3 min ago" in three_back.detail
    assert (await refusal(v, device.current(T0 - 120), T0)).reason == "expired"
    assert (await refusal(v, device.current(T0 - 600), T0)).reason == "expired"
    assert (await refusal(v, device.current(T0 - 660), T0)).reason == "forged"  # beyond the look-back
    too_early = await refusal(v, device.current(T0 + 120), T0)
    assert too_early.reason == "forged" and "clock" in too_early.detail


@settings(derandomize=True, max_examples=200)  # fixed examples: a chance match (odds 12 in 10^7) cannot flake
@given(st.integers(0, 10**7 - 1))
def test_random_digits_with_a_valid_check_digit_are_forged(otp: int) -> None:
    code = format_code(TOKEN, otp)
    if code == PayCodeGenerator(TOKEN, KEY).current(T0):
        return
    refused = asyncio.run(refusal(verifier(), code))
    assert refused.reason == "forged" and str(TOKEN) in refused.detail


async def test_a_wrong_check_digit_is_a_checksum_error_before_any_lookup() -> None:
    looked_up: list[int] = []

    def key_for(token: int) -> bytes:
        looked_up.append(token)
        return KEY

    v = PayCodeVerifier(key_for, MemoryUsedCodes())
    code = PayCodeGenerator(TOKEN, KEY).current(T0)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    refused = await refusal(v, wrong)
    assert refused.reason == "checksum" and "mistyped" in refused.detail and looked_up == []


@given(st.integers(2, 17), st.integers(1, 9))
def test_any_misread_digit_is_caught_by_the_check_digit(position: int, shift: int) -> None:
    code = format_code(TOKEN, 3132202)
    wrong = code[:position] + str((int(code[position]) + shift) % 10) + code[position + 1 :]
    with pytest.raises(PayCodeError) as refused:
        parse(wrong)
    assert refused.value.reason == "checksum"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("", "has 18 digits, this one has 0"),
        ("28123456783132202", "has 18 digits, this one has 17"),
        ("2812345678313220211", "has 18 digits, this one has 19"),
        ("28123456783132202x", "digits only"),
        ("\uff12" * 18, "digits only"),  # full-width digits are digits to Python, not to us
        ("251234567831322021", "not a TOS+ pay code"),
    ],
)
async def test_malformed_codes(code: str, words: str) -> None:
    refused = await refusal(verifier(), code)
    assert refused.reason == "malformed" and words in refused.detail


async def test_unknown_token_and_asynchronous_key_lookup() -> None:
    other = format_code(87654321, 1234567)
    assert (await refusal(verifier(), other)).reason == "unknown_token"

    async def key_for(token: int) -> bytes | None:
        await asyncio.sleep(0)
        return KEY if token == TOKEN else None

    v = PayCodeVerifier(key_for, MemoryUsedCodes())
    assert (await v.verify(PayCodeGenerator(TOKEN, KEY).current(T0), T0)).token_number == TOKEN
    refused = await refusal(v, other)
    assert refused.reason == "unknown_token" and "87654321" in refused.detail


async def test_twenty_cashiers_scanning_one_code_at_once_charge_once() -> None:
    async def key_for(token: int) -> bytes:
        await asyncio.sleep(0)  # every verify is in flight before any marks the code
        return KEY

    v = PayCodeVerifier(key_for, MemoryUsedCodes())
    code = PayCodeGenerator(TOKEN, KEY).current(T0)
    results = await asyncio.gather(*(v.verify(code, T0) for _ in range(20)), return_exceptions=True)
    accepted = [r for r in results if isinstance(r, Verified)]
    assert len(accepted) == 1
    assert all(isinstance(r, PayCodeError) and r.reason == "used" for r in results if r not in accepted)


async def test_every_candidate_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hub_paycode.hmac, "compare_digest", counting)
    await verifier().verify(PayCodeGenerator(TOKEN, KEY).current(T0), T0)
    assert len(calls) == 3 * 4  # three steps, four counters: no early exit on the match


async def test_memory_used_codes_forget_steps_that_can_no_longer_be_accepted() -> None:
    used = MemoryUsedCodes(skew_steps=1)
    assert await used.mark_used(1, 100, 0) and not await used.mark_used(1, 100, 0)
    assert await used.mark_used(2, 100, 0) and await used.mark_used(1, 100, 1) and await used.mark_used(1, 101, 0)
    assert len(used) == 4
    await used.mark_used(1, 102, 0)
    assert len(used) == 5  # step 100 is still within two skews of step 102
    await used.mark_used(1, 103, 0)
    assert len(used) == 3 and await used.mark_used(1, 100, 0)  # forgotten: step 100 now only ever "expired"


def test_paycode_parses_and_formats() -> None:
    body = f"28{TOKEN:08d}0000042"
    code = body + luhn_digit(body)
    parsed = PayCode.parse(f"{code[:4]} {code[4:8]}-{code[8:]}")
    assert parsed == PayCode("28", TOKEN, 42) and str(parsed) == code
    assert issubclass(PayCodeError, InvalidInput) and PayCodeError("used", "x").status == 422


async def test_a_fresh_key_round_trip_through_every_counter() -> None:
    key = new_key()
    v = verifier({5: key})
    device = PayCodeGenerator(5, key)
    seen = [await v.verify(device.current(T0), T0)]
    for _ in range(3):
        seen.append(await v.verify(device.next_after_use(T0), T0))
    assert [(s.step, s.counter) for s in seen] == [(STEP, 0), (STEP, 1), (STEP, 2), (STEP, 3)]
    assert await v.verify(device.next_after_use(T0), T0) == Verified(5, STEP + 1, 0)  # borrowed the next step
