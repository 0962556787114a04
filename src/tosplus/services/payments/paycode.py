"""Pay codes at the counter, hub side: parse a scanned code, find its token, check the one-time value, and
accept each (token, step, counter) once.

The arithmetic is the device SDK's (:mod:`tosplus.sdk.paycode`), so the device and the hub cannot disagree.
Storage stays outside: keys come from a callable and "used" marks go through :class:`UsedCodes`, whose one
operation is atomic, so two cashiers scanning one code at once cannot both be accepted. Refusals carry a
reason a cashier's system can act on (docs/payments-paycode.md).
"""

from __future__ import annotations

import hmac
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from tosplus.errors import InvalidInput
from tosplus.sdk.paycode import (
    CODE_DIGITS,
    MAX_COUNTER,
    OTP_DIGITS,
    PREFIX,
    STEP_S,
    TOKEN_DIGITS,
    format_code,
    luhn_ok,
    normalise,
    one_time_value,
    time_step,
)

Reason = Literal["malformed", "checksum", "unknown_token", "expired", "forged", "used"]
KeyLookup = Callable[[int], bytes | Awaitable[bytes | None] | None]


class PayCodeError(InvalidInput):
    """A pay code was refused; ``reason`` is one of :data:`Reason`, ``detail`` says it in words."""

    title = "Pay code refused"

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class PayCode:
    """A code taken apart: which token it names and the one-time value it shows."""

    prefix: str
    token_number: int
    otp: int

    @classmethod
    def parse(cls, code: str) -> PayCode:
        return parse(code)

    def __str__(self) -> str:
        return format_code(self.token_number, self.otp)


def parse(code: str) -> PayCode:
    """Take a scanned or typed code apart; spaces and hyphens between digit groups are ignored.

    Raises :class:`PayCodeError` "malformed" (not 18 digits, or not a TOS+ code) or "checksum" (a digit was
    mistyped or misread), both without touching any token.
    """
    digits = normalise(code)
    if len(digits) != CODE_DIGITS:
        raise PayCodeError("malformed", f"a pay code has {CODE_DIGITS} digits, this one has {len(digits)}")
    if not digits.isascii() or not digits.isdigit():
        raise PayCodeError("malformed", "a pay code holds digits only")
    if not digits.startswith(PREFIX):
        raise PayCodeError("malformed", f"not a TOS+ pay code: those start with {PREFIX}")
    if not luhn_ok(digits):
        raise PayCodeError("checksum", "the check digit does not match: the code was mistyped or misread")
    start = len(PREFIX)
    token = int(digits[start : start + TOKEN_DIGITS])
    otp = int(digits[start + TOKEN_DIGITS : start + TOKEN_DIGITS + OTP_DIGITS])
    return PayCode(PREFIX, token, otp)


@dataclass(frozen=True, slots=True)
class Verified:
    """An accepted code: the token to charge and which of its codes was spent."""

    token_number: int
    step: int
    counter: int


class UsedCodes(Protocol):
    """Where spent codes are remembered (memory here; a table with a unique key in the payments service)."""

    async def mark_used(self, token_number: int, step: int, counter: int) -> bool:
        """Mark (token, step, counter) as spent; False if it already was. Must be atomic."""
        ...


class MemoryUsedCodes:
    """Spent codes in memory, for one hub process.

    ``mark_used`` does not await, so on one event loop it is atomic. Marks are dropped once their step can no
    longer be accepted: the newest step marked is at most ``skew_steps`` ahead of the hub's clock, so steps
    more than ``2 * skew_steps`` below it are outside every verifier window (use the verifier's skew).
    """

    def __init__(self, *, skew_steps: int = 1) -> None:
        self._keep = 2 * skew_steps
        self._by_step: dict[int, set[tuple[int, int]]] = {}
        self._newest = -1

    async def mark_used(self, token_number: int, step: int, counter: int) -> bool:
        if step > self._newest:
            self._newest = step
            for old in [s for s in self._by_step if s < step - self._keep]:
                del self._by_step[old]
        marks = self._by_step.setdefault(step, set())
        if (token_number, counter) in marks:
            return False
        marks.add((token_number, counter))
        return True

    def __len__(self) -> int:
        return sum(len(marks) for marks in self._by_step.values())


class PayCodeVerifier:
    """Checks scanned codes against the tokens' keys.

    A code is accepted when its one-time value is that of some counter below ``max_counter`` at a step within
    ``skew_steps`` of the hub's clock (either side: the device's clock may be off, and a code shown at the end
    of its minute must survive the scan), and that (token, step, counter) was not spent before. A value that
    only matches a step up to ``lookback_steps`` older is "expired"; no match at all is "forged".
    """

    def __init__(
        self,
        key_for_token: KeyLookup,
        used: UsedCodes,
        *,
        step_s: int = STEP_S,
        skew_steps: int = 1,
        max_counter: int = MAX_COUNTER,
        lookback_steps: int = 10,
    ) -> None:
        self._key_for_token = key_for_token
        self._used = used
        self.step_s = step_s
        self.skew_steps = skew_steps
        self.max_counter = max_counter
        self.lookback_steps = lookback_steps

    async def verify(self, code: str, now: float | None = None) -> Verified:
        """Accept ``code`` once, or raise :class:`PayCodeError` with the reason."""
        paycode = parse(code)
        key = self._key_for_token(paycode.token_number)
        if inspect.isawaitable(key):
            key = await key
        if key is None:
            raise PayCodeError("unknown_token", f"no payment token {paycode.token_number}: never issued or removed")
        current = time_step(time.time() if now is None else now, self.step_s)
        matches = self._current_matches(key, paycode, current)
        for step, counter in matches:
            if await self._used.mark_used(paycode.token_number, step, counter):
                return Verified(paycode.token_number, step, counter)
        if matches:
            raise PayCodeError("used", "this pay code was already used: the device shows the next one")
        older = range(current - self.skew_steps - 1, current - self.lookback_steps - 1, -1)
        if expired := self._matches(key, paycode, older):
            age_s = (current - expired[0][0]) * self.step_s
            age = f"{age_s // 60} min" if age_s % 60 == 0 else f"{age_s} s"
            raise PayCodeError("expired", f"this pay code expired: it was shown about {age} ago; show a fresh one")
        raise PayCodeError(
            "forged",
            f"the code is none that token {paycode.token_number} showed in the last {self.lookback_steps} steps: "
            f"a forged code, or the device's clock is off by more than {self.skew_steps * self.step_s} s",
        )

    def quick_matches(self, code: str, now: float | None = None) -> tuple[int, list[tuple[int, int]]] | None:
        """For callers that mark codes used themselves (in a batch): the code's token number and the (step,
        counter) pairs within the window that show its value, best first; None when the code cannot be judged
        from memory alone (malformed, unknown token, a key that must be awaited) — use :meth:`verify` then."""
        try:
            paycode = parse(code)
        except PayCodeError:
            return None
        key = self._key_for_token(paycode.token_number)
        if key is None or inspect.isawaitable(key):
            return None
        assert isinstance(key, bytes)
        current = time_step(time.time() if now is None else now, self.step_s)
        return paycode.token_number, self._current_matches(key, paycode, current, first=True)

    def _current_matches(
        self, key: bytes, paycode: PayCode, current: int, *, first: bool = False
    ) -> list[tuple[int, int]]:
        window = sorted(range(current - self.skew_steps, current + self.skew_steps + 1), key=lambda s: abs(s - current))
        return self._matches(key, paycode, window, first=first)

    def _matches(
        self, key: bytes, paycode: PayCode, steps: range | list[int], *, first: bool = False
    ) -> list[tuple[int, int]]:
        """Every (step, counter) whose value equals the code's, in order (``first``: stop at the first). Each
        candidate is compared in constant time. Stopping early tells, by the time taken, only which candidate a
        *valid* code is — nothing its holder does not know; a forged code is still compared with every one."""
        shown = f"{paycode.otp:0{OTP_DIGITS}d}".encode()
        found = []
        for step in steps:
            if step < 0:
                continue
            for counter in range(self.max_counter):
                value = one_time_value(key, paycode.token_number, step, counter)
                if hmac.compare_digest(f"{value:0{OTP_DIGITS}d}".encode(), shown):
                    found.append((step, counter))
                    if first:
                        return found
        return found
