"""Pairing codes and the SPAKE2 exchange without a hub: check digit, no trivial codes, limits on the screen."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tosplus.sdk.pairing import (
    ControllerPairing,
    FileCredentials,
    PairingError,
    ScreenPairing,
    generate_code,
    is_trivial,
    normalise_code,
    parse_pair_uri,
    verhoeff_digit,
    verhoeff_valid,
)

MATTER_INVALID = [str(d) * 8 for d in range(10)] + ["12345678", "87654321"]
TRIVIAL_PAYLOADS = [
    f"{start:d}" + "".join(str((start + step * i) % 10) for i in range(1, 7))
    for start in range(10)
    for step in range(10)
] + ["1212121", "1231231", "1234123", "1111222"]


def test_verhoeff_catches_every_single_error_and_every_adjacent_swap() -> None:
    assert verhoeff_digit("236") == "3" and verhoeff_valid("2363")  # the textbook example
    for payload in ("1234567", "0918273", "5550123"):
        code = payload + verhoeff_digit(payload)
        assert verhoeff_valid(code)
        for i in range(8):
            for d in "0123456789":
                if d != code[i]:
                    assert not verhoeff_valid(code[:i] + d + code[i + 1 :])
            if i < 7 and code[i] != code[i + 1]:
                assert not verhoeff_valid(code[:i] + code[i + 1] + code[i] + code[i + 2 :])


def test_trivial_codes_are_recognised() -> None:
    for code in MATTER_INVALID:
        assert is_trivial(code), code
    for payload in TRIVIAL_PAYLOADS:
        assert is_trivial(payload + verhoeff_digit(payload)), payload
    for code in ("12121212", "12312312", "12341234", "11112222", "90123456", "02468024"):
        assert is_trivial(code), code
    assert not is_trivial("73905182")


@given(st.lists(st.one_of(st.integers(0, 10**7 - 1), st.sampled_from([int(p) for p in TRIVIAL_PAYLOADS])), min_size=1))
def test_the_generator_never_issues_a_trivial_code(draws: list[int]) -> None:
    queue = list(draws)

    def randbelow(n: int) -> int:
        assert n == 10**7
        return queue.pop(0) if queue else int.from_bytes(os.urandom(4), "big") % n

    code = generate_code(randbelow)
    assert len(code) == 8 and code.isdigit() and verhoeff_valid(code)
    assert not is_trivial(code) and code not in MATTER_INVALID


def test_typed_and_scanned_codes() -> None:
    code = generate_code()
    assert normalise_code(f" {code[:4]}-{code[4:]} ") == code
    assert parse_pair_uri(f"tosplus:pair:abc123:{code}") == ("abc123", code)
    bad = code[:7] + str((int(code[7]) + 1) % 10)
    with pytest.raises(PairingError, match="check digit"):
        normalise_code(bad)
    with pytest.raises(PairingError):
        parse_pair_uri("tosplus:bind:ABCD")


def _pair(screen: ScreenPairing, code: str, attempt: str) -> bytes:
    phone = ControllerPairing(screen.device_id, code=code)
    msg_b, confirm_b = screen.answer(attempt, phone.msg_a, new_credential_id="pcr_1")
    return phone.finish(msg_b, confirm_b)


def test_keys_agree_codes_work_once_and_expire() -> None:
    now = [1000.0]
    screen = ScreenPairing("tv", clock=lambda: now[0])
    shown = screen.new_code()
    phone = ControllerPairing("tv", code=shown.text)
    msg_b, confirm_b = screen.answer("a1", phone.msg_a, new_credential_id="pcr_1")
    paired = screen.verify("a1", phone.finish(msg_b, confirm_b))
    assert paired.session_key == phone.result("pcr_1").session_key and len(paired.session_key) == 32
    assert screen.current() is None  # used
    with pytest.raises(PairingError) as used:
        _pair(screen, shown.code, "a2")
    assert used.value.reason == "no_code"
    shown = screen.new_code()
    now[0] += 301
    with pytest.raises(PairingError) as expired:
        _pair(screen, shown.code, "a3")
    assert expired.value.reason == "no_code"


def test_a_wrong_code_shows_on_both_sides_and_five_attempts_burn_the_code() -> None:
    screen = ScreenPairing("tv")
    shown = screen.new_code()
    wrong = generate_code()
    while wrong == shown.code:
        wrong = generate_code()
    for i in range(5):
        phone = ControllerPairing("tv", code=wrong)
        msg_b, confirm_b = screen.answer(f"a{i}", phone.msg_a)
        with pytest.raises(PairingError) as refused:  # the phone sees it first ...
            phone.finish(msg_b, confirm_b)
        assert refused.value.reason == "wrong_code"
        with pytest.raises(PairingError):  # ... and the screen too
            screen.verify(f"a{i}", b"\0" * 32)
    assert screen.current() is None  # burnt
    with pytest.raises(PairingError):
        _pair(screen, shown.code, "a9")


def test_a_credential_pairs_without_a_code(tmp_path: Path) -> None:
    store = FileCredentials(tmp_path / "credentials.json")
    screen = ScreenPairing("tv", credentials=store)
    shown = screen.new_code()
    phone = ControllerPairing("tv", code=shown.code)
    msg_b, confirm_b = screen.answer("a1", phone.msg_a, new_credential_id="pcr_1")
    first = screen.verify("a1", phone.finish(msg_b, confirm_b), {"user": "u1"})
    assert first.credential_secret is not None
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    reloaded = ScreenPairing("tv", credentials=FileCredentials(tmp_path / "credentials.json"))  # after a reboot
    again = ControllerPairing("tv", credential=("pcr_1", first.credential_secret))
    msg_b, confirm_b = reloaded.answer("a2", again.msg_a, credential_id="pcr_1")
    second = reloaded.verify("a2", again.finish(msg_b, confirm_b))
    assert second.session_key == again.result().session_key != first.session_key
    forged = ControllerPairing("tv", credential=("pcr_1", b"\1" * 32))
    msg_b, confirm_b = reloaded.answer("a3", forged.msg_a, credential_id="pcr_1")
    with pytest.raises(PairingError):
        forged.finish(msg_b, confirm_b)
