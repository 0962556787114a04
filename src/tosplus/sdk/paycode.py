"""Pay codes at the counter, device side: an 18-digit code that rotates every 60 s and needs no network.

The cashier scans only the code, so it carries the payment token's public number next to a one-time value
the hub can recompute from the token's key::

    28 | token number (8) | one-time value (7) | Luhn check digit (1)      = 18 digits

The one-time value is HOTP's dynamic truncation (RFC 4226 §5.3) of
``HMAC-SHA256(key, "tos+paycode/v1" || token (4 bytes) || step (8 bytes) || counter (4 bytes))`` modulo 10**7,
where ``step`` is the Unix time divided by 60 and ``counter`` numbers the codes shown within one step: after a
payment the device moves to the next counter, so a fresh code is ready at once while the used one stays dead.
The hub imports these functions, so the device and the hub share one implementation of the arithmetic.
docs/payments-paycode.md gives the format and its security argument.

Standard library only (``segno`` is imported by :func:`code_svg` alone): this module is part of the device SDK.
"""

from __future__ import annotations

import hmac
import io
import secrets
import time

PREFIX = "28"
"""The first two digits of every TOS+ pay code: they tell a cashier's system whose code it scanned."""
TOKEN_DIGITS = 8
OTP_DIGITS = 7
CODE_DIGITS = len(PREFIX) + TOKEN_DIGITS + OTP_DIGITS + 1
STEP_S = 60
MAX_COUNTER = 4
"""Codes per time step (counters 0..3). Every counter widens what a guess can hit, so it is kept small."""
BORROW_STEPS = 1
"""When a step's counters run out, the device may use the next step's codes early (the hub's clock skew)."""
_DOMAIN = b"tos+paycode/v1"
TOKEN_LIMIT: int = 10**TOKEN_DIGITS
OTP_LIMIT: int = 10**OTP_DIGITS


class PayCodesExhaustedError(RuntimeError):
    """Every code the device may show right now has been used: wait ``wait_s`` seconds for the next step."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"every pay code of this minute is used; the next one is ready in {wait_s:.0f} s")
        self.wait_s = wait_s


def new_key() -> bytes:
    """A fresh 256-bit token key (the hub issues it to the device when payment is enabled)."""
    return secrets.token_bytes(32)


def time_step(now: float, step_s: int = STEP_S) -> int:
    """The time step that contains ``now`` (Unix seconds): TOTP's ``T = floor(now / step)`` with ``T0 = 0``."""
    return int(now // step_s)


def one_time_value(key: bytes, token_number: int, step: int, counter: int) -> int:
    """The 7-digit one-time value of (token, step, counter); the token number is in the message so that a key
    accidentally given to two tokens still yields unrelated codes."""
    message = _DOMAIN + token_number.to_bytes(4, "big") + step.to_bytes(8, "big") + counter.to_bytes(4, "big")
    return truncate(hmac.digest(key, message, "sha256")) % OTP_LIMIT


def truncate(digest: bytes) -> int:
    """RFC 4226's dynamic truncation: 31 bits from an offset chosen by the digest's last nibble."""
    offset = digest[-1] & 0x0F
    return int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFF_FFFF


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits``: catches every single wrong digit and most swaps of two
    neighbours, so a mistyped code is refused before any key is looked up."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def luhn_ok(digits: str) -> bool:
    """Whether the last digit of ``digits`` is the Luhn check digit of the others."""
    return len(digits) > 1 and luhn_digit(digits[:-1]) == digits[-1]


def format_code(token_number: int, otp: int) -> str:
    """The 18 digits for a token number and a one-time value."""
    if not 0 <= token_number < TOKEN_LIMIT or not 0 <= otp < OTP_LIMIT:
        raise ValueError("token number or one-time value out of range")
    body = f"{PREFIX}{token_number:0{TOKEN_DIGITS}d}{otp:0{OTP_DIGITS}d}"
    return body + luhn_digit(body)


def normalise(code: str) -> str:
    """The code without the spaces or hyphens a person may type between groups of digits."""
    return "".join(code.split()).replace("-", "")


def grouped(code: str) -> str:
    """The code in groups of four digits, as a screen shows it to be read aloud or typed."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


class PayCodeGenerator:
    """The codes a device shows for one payment token, from its key and its clock only (works offline).

    The generator remembers the first (step, counter) not yet known to be used. :meth:`current` shows that
    position, or counter 0 of the current step once the clock has moved past it; :meth:`next_after_use` is
    called when the shown code was spent (the hub told the device, or the person asked for a new code).
    Persist :attr:`position` across restarts to avoid showing a spent code once (the hub would refuse it as
    "used", and the next code is one call away).
    """

    def __init__(
        self,
        token_number: int,
        key: bytes,
        *,
        step_s: int = STEP_S,
        max_counter: int = MAX_COUNTER,
        position: tuple[int, int] = (0, 0),
    ) -> None:
        if not 0 <= token_number < TOKEN_LIMIT:
            raise ValueError(f"a token number has at most {TOKEN_DIGITS} digits")
        if len(key) < 16:
            raise ValueError("a token key has at least 128 bits")
        self.token_number = token_number
        self._key = key
        self.step_s = step_s
        self.max_counter = max_counter
        self.position = position

    def _shown(self, now: float | None) -> tuple[int, int]:
        step = time_step(time.time() if now is None else now, self.step_s)
        return max(self.position, (step, 0))

    def current(self, now: float | None = None) -> str:
        """The code to show now."""
        step, counter = self._shown(now)
        return format_code(self.token_number, one_time_value(self._key, self.token_number, step, counter))

    def next_after_use(self, now: float | None = None) -> str:
        """Mark the shown code as spent and return the next one: the next counter of the step, or, when the
        step's counters are spent, the next step's first code (at most :data:`BORROW_STEPS` ahead)."""
        now = time.time() if now is None else now
        step, counter = self._shown(now)
        following = (step, counter + 1) if counter + 1 < self.max_counter else (step + 1, 0)
        if following[0] > time_step(now, self.step_s) + BORROW_STEPS:
            raise PayCodesExhaustedError((step * self.step_s) - now)
        self.position = following
        return self.current(now)

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the shown code changes by itself (the end of its time step)."""
        now = time.time() if now is None else now
        return (self._shown(now)[0] + 1) * self.step_s - now


def code_svg(code: str, *, scale: int = 4) -> str:
    """The code as a QR code in SVG, for screens (cashiers' scanners read QR codes from phones and watches)."""
    import segno  # imported here: devices that draw their own QR code need only the arithmetic above

    out = io.BytesIO()
    segno.make_qr(code, error="m").save(out, kind="svg", xmldecl=False, scale=scale, border=4, light="#fff")
    return out.getvalue().decode()


# Code 128 symbol widths (bar, space, bar, space, bar, space in modules) for values 0..106 (ISO/IEC 15417).
_C128_WIDTHS = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 122132 122231 "
    "113222 123122 123221 223211 221132 221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 "
    "212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 231113 231311 112133 112331 132131 "
    "113123 113321 133121 313121 211331 231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 "
    "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 "
    "241211 221114 413111 241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 "
    "214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131 211412 211214 "
    "211232 2331112"
)
_C128 = _C128_WIDTHS.split()
_START_C, _STOP = 105, 106


def code128_values(code: str) -> list[int]:
    """The Code 128 symbol values of an even number of digits in code set C: start, pairs, check, stop."""
    if len(code) % 2 or not code.isdigit():
        raise ValueError("code set C takes an even number of digits")
    values = [_START_C] + [int(code[i : i + 2]) for i in range(0, len(code), 2)]
    check = (values[0] + sum(i * v for i, v in enumerate(values) if i)) % 103
    return [*values, check, _STOP]


def barcode_svg(code: str, *, module: int = 2, height: int = 80) -> str:
    """The code as a Code 128 barcode in SVG, for the 1-D scanners many counters still have."""
    widths = [int(w) for value in code128_values(code) for w in _C128[value]]
    x, bars = 10, []  # ten modules of quiet zone on each side
    for i, w in enumerate(widths):
        if i % 2 == 0:
            bars.append(f'<rect x="{x * module}" y="0" width="{w * module}" height="{height}"/>')
        x += w
    size = f'width="{(x + 10) * module}" height="{height}"'
    background = f'<rect {size} fill="#fff"/>'
    return f'<svg xmlns="http://www.w3.org/2000/svg" {size}>{background}<g fill="#000">{"".join(bars)}</g></svg>'
