"""Pairing a controller (a phone) with a screen (a TV): codes, SPAKE2, key confirmation, pairing credentials.

The screen shows an 8-digit **pairing code**: 7 random digits and a Verhoeff check digit (Verhoeff catches every
single wrong digit and every swap of two neighbours, which Luhn does not for 09/90). Codes that people could
guess first are never issued (:func:`is_trivial`). The QR code carries ``tosplus:pair:<device id>:<code>``.

Both sides run SPAKE2 (the ``spake2`` package, Ed25519 group; the controller is side A, the screen side B) with
the code as the password, so the code never travels: the hub that relays the messages sees only SPAKE2 messages
and confirmation MACs, from which it can neither learn the code nor the key, and a code seen over a shoulder
is useless once it has been used. Each attempt is one online guess; the screen and the hub both stop a code
after 5 attempts (see docs/sessions.md for the message flow).

From the SPAKE2 key ``K`` and the transcript hash ``th = SHA-256(msg_a || msg_b)``::

    confirm key   Kc = HMAC-SHA256(K, "tos+pair/v1 confirm"    || th)
    confirm_b        = HMAC-SHA256(Kc, "screen")        (screen → controller)
    confirm_a        = HMAC-SHA256(Kc, "controller")    (controller → screen)
    session key      = HMAC-SHA256(K, "tos+pair/v1 session"    || th)
    credential       = HMAC-SHA256(K, "tos+pair/v1 credential" || th)    (code pairings only)

The **pairing credential** lets the same controller pair again without a code: both sides keep the
32-byte secret under the credential id the hub assigned, and the next pairing runs the same exchange with the
secret as the password (``idA`` names the credential). The hub keeps only who holds which credential.

Standard library and ``spake2`` (``segno`` only for :func:`qr_svg`); this module is part of the device SDK.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tosplus.sdk.errors import DeviceError

CODE_DIGITS = 8
CODE_TTL_S = 300
MAX_ATTEMPTS = 5
URI_PREFIX = "tosplus:pair:"
_DOMAIN = b"tos+pair/v1 "
_ID_CONTROLLER = b"tosplus controller"
_ID_CREDENTIAL = b"tosplus credential "
_ID_SCREEN = b"tosplus screen "

# Verhoeff's tables: the dihedral group D5, the permutation, and the inverse.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


class PairingError(DeviceError):
    """A pairing step failed: a wrong or expired code, an unknown credential, a confirmation that does not match.

    ``reason`` is one of ``wrong_code``, ``expired``, ``no_code``, ``burnt``, ``unknown_credential``,
    ``unknown_attempt``, ``malformed``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# -- codes -----------------------------------------------------------------------------------------------------


def verhoeff_digit(digits: str) -> str:
    """The Verhoeff check digit to append to ``digits``."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[(i + 1) % 8][int(ch)]]
    return str(_INV[c])


def verhoeff_valid(digits: str) -> bool:
    """Does ``digits`` end with its right Verhoeff check digit?"""
    if not digits.isdigit() or not digits.isascii():
        return False
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def _progression(digits: str) -> bool:
    """Do the digits step by one constant amount (mod 10)? 0000000, 1234567, 7654321, 0246802, 9012345 ..."""
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    return len(steps) <= 1


def _periodic(digits: str, longest: int = 4) -> bool:
    """Is ``digits`` one short block repeated (12121212, 12312312, 12341234)?"""
    return any(digits == (digits[:n] * (len(digits) // n + 1))[: len(digits)] for n in range(1, longest + 1))


def is_trivial(code: str) -> bool:
    """A code people would try first, never issued.

    Matter refuses 00000000, 11111111 … 99999999, 12345678 and 87654321 as setup codes; we refuse more: every
    code whose 7 random digits or all 8 digits step by a constant (repeated digits, runs up or down, also
    wrapping past 9, and steps of 2, 3 …), every code whose random digits or all 8 digits repeat a block of up to
    4 digits, and every code of at most 2 distinct digits: about 12,000 of the 10 million codes (0.12 %).
    """
    if len(code) != CODE_DIGITS or not code.isdigit():
        return True
    payload = code[:7]
    return _progression(payload) or _periodic(payload) or _periodic(code) or len(set(code)) <= 2


def generate_code(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh pairing code: 7 random digits and their Verhoeff check digit, never a trivial one."""
    while True:
        payload = f"{randbelow(10**7):07d}"
        code = payload + verhoeff_digit(payload)
        if not is_trivial(code):
            return code


def normalise_code(text: str) -> str:
    """What a person typed, without spaces and dashes; :class:`PairingError` when it cannot be a code."""
    code = "".join(ch for ch in text if ch not in " -\u00a0")
    if len(code) != CODE_DIGITS or not code.isdigit() or not code.isascii():
        raise PairingError("malformed", "a pairing code has 8 digits")
    if not verhoeff_valid(code):
        raise PairingError("malformed", "this is not a pairing code (its check digit is wrong): look again")
    return code


def grouped(code: str) -> str:
    """``1234 5678``, how screens show it."""
    return f"{code[:4]} {code[4:]}"


def pair_uri(device_id: str, code: str) -> str:
    return f"{URI_PREFIX}{device_id}:{code}"


def parse_pair_uri(uri: str) -> tuple[str, str]:
    """``(device id, code)`` from a scanned ``tosplus:pair:<device>:<code>``."""
    if not uri.startswith(URI_PREFIX):
        raise PairingError("malformed", "not a TOS+ pairing QR code")
    device_id, sep, code = uri[len(URI_PREFIX) :].rpartition(":")
    if not sep or not device_id:
        raise PairingError("malformed", "not a TOS+ pairing QR code")
    return device_id, normalise_code(code)


def qr_svg(uri: str, *, scale: int = 4) -> str:
    """The pairing URI as a QR code in SVG (what the screen shows next to the digits)."""
    import segno  # only screens that let the SDK draw the QR code need it

    out = io.BytesIO()
    segno.make_qr(uri, error="m").save(out, kind="svg", xmldecl=False, scale=scale, border=4, light="#fff")
    return out.getvalue().decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, what: str = "message") -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise PairingError("malformed", f"the {what} is not base64") from None


# -- the key schedule ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Keys:
    confirm_a: bytes
    confirm_b: bytes
    session: bytes
    credential: bytes


def _schedule(k: bytes, msg_a: bytes, msg_b: bytes) -> _Keys:
    th = hashlib.sha256(msg_a + msg_b).digest()
    kc = hmac.digest(k, _DOMAIN + b"confirm" + th, "sha256")
    return _Keys(
        confirm_a=hmac.digest(kc, b"controller", "sha256"),
        confirm_b=hmac.digest(kc, b"screen", "sha256"),
        session=hmac.digest(k, _DOMAIN + b"session" + th, "sha256"),
        credential=hmac.digest(k, _DOMAIN + b"credential" + th, "sha256"),
    )


def _identities(device_id: str, credential_id: str | None) -> tuple[bytes, bytes]:
    id_a = _ID_CREDENTIAL + credential_id.encode() if credential_id else _ID_CONTROLLER
    return id_a, _ID_SCREEN + device_id.encode()


def _password(code: str | None, secret: bytes | None) -> bytes:
    if secret is not None:
        return b"credential:" + secret
    assert code is not None
    return b"code:" + code.encode()


@dataclass(frozen=True, slots=True)
class Paired:
    """What a successful pairing leaves on each side: the session key, and a new pairing credential."""

    session_key: bytes
    credential_id: str | None
    credential_secret: bytes | None  # None when the pairing used a credential (the old one stays)


# -- the controller's side -------------------------------------------------------------------------------------


class ControllerPairing:
    """The phone's side of one pairing attempt (sans I/O: the caller carries the messages).

    ``ControllerPairing(device_id, code=...)`` or ``ControllerPairing(device_id, credential=(id, secret))``;
    ``msg_a`` goes to the hub; ``finish(msg_b, confirm_b)`` checks the screen's confirmation (a wrong code
    shows here: :class:`PairingError` ``wrong_code``) and returns ``confirm_a`` for the screen.
    """

    def __init__(self, device_id: str, *, code: str | None = None, credential: tuple[str, bytes] | None = None) -> None:
        from spake2 import SPAKE2_A

        if (code is None) == (credential is None):
            raise DeviceError("pair with either a code or a credential")
        self.device_id = device_id
        self.credential_id = credential[0] if credential else None
        id_a, id_b = _identities(device_id, self.credential_id)
        password = _password(normalise_code(code) if code else None, credential[1] if credential else None)
        self._spake = SPAKE2_A(password, idA=id_a, idB=id_b)
        self.msg_a: bytes = self._spake.start()
        self._keys: _Keys | None = None

    def finish(self, msg_b: bytes, confirm_b: bytes) -> bytes:
        try:
            k = self._spake.finish(msg_b)
        except Exception as exc:  # a malformed element, a reflected message
            raise PairingError("malformed", f"the screen's message is not valid ({type(exc).__name__})") from None
        keys = _schedule(k, self.msg_a, msg_b)
        if not hmac.compare_digest(keys.confirm_b, confirm_b):
            raise PairingError("wrong_code", "the screen did not confirm: the code is wrong (or it changed)")
        self._keys = keys
        return keys.confirm_a

    def result(self, credential_id: str | None = None) -> Paired:
        """After the hub said the screen accepted: the session key and (code pairings) the new credential."""
        if self._keys is None:
            raise DeviceError("the pairing is not finished")
        if self.credential_id is not None:
            return Paired(self._keys.session, self.credential_id, None)
        return Paired(self._keys.session, credential_id, self._keys.credential if credential_id else None)


# -- the screen's side -----------------------------------------------------------------------------------------


class CredentialStore(Protocol):
    """Where a screen keeps the pairing credentials of its controllers."""

    def get(self, credential_id: str) -> bytes | None: ...
    def put(self, credential_id: str, secret: bytes, info: dict[str, Any]) -> None: ...
    def remove(self, credential_id: str) -> None: ...


class MemoryCredentials:
    """Credentials in memory: a restart of the screen forgets them (controllers then pair with a code again)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[bytes, dict[str, Any]]] = {}

    def get(self, credential_id: str) -> bytes | None:
        item = self._items.get(credential_id)
        return item[0] if item else None

    def put(self, credential_id: str, secret: bytes, info: dict[str, Any]) -> None:
        self._items[credential_id] = (secret, dict(info))

    def remove(self, credential_id: str) -> None:
        self._items.pop(credential_id, None)

    def __len__(self) -> int:
        return len(self._items)


class FileCredentials(MemoryCredentials):
    """Credentials in a JSON file readable by the device's user only (``0600``), rewritten atomically."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        if path.exists():
            for cid, item in json.loads(path.read_text()).items():
                self._items[cid] = (base64.b64decode(item["secret"]), dict(item.get("info", {})))

    def put(self, credential_id: str, secret: bytes, info: dict[str, Any]) -> None:
        super().put(credential_id, secret, info)
        self._save()

    def remove(self, credential_id: str) -> None:
        if credential_id in self._items:
            super().remove(credential_id)
            self._save()

    def _save(self) -> None:
        doc = {cid: {"secret": b64(secret), "info": info} for cid, (secret, info) in self._items.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(doc))
        os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class ShownCode:
    """The code a screen shows now."""

    device_id: str
    code: str
    expires_at: float  # Unix seconds

    @property
    def uri(self) -> str:
        return pair_uri(self.device_id, self.code)

    @property
    def text(self) -> str:
        return grouped(self.code)

    def qr_svg(self, scale: int = 4) -> str:
        return qr_svg(self.uri, scale=scale)


@dataclass(slots=True)
class _Attempt:
    spake: Any
    msg_a: bytes
    credential_id: str | None  # the credential it uses, or None for the code
    new_credential_id: str | None
    keys: _Keys | None = None


@dataclass
class ScreenPairing:
    """The screen's side: the code it shows, each attempt's SPAKE2 state, the controllers' credentials.

    The screen enforces the rules itself as well as the hub: a code lives ``ttl_s`` seconds, works once, and
    after ``max_attempts`` attempts it is burnt (a new one must be shown).
    """

    device_id: str
    credentials: CredentialStore = field(default_factory=MemoryCredentials)
    ttl_s: float = CODE_TTL_S
    max_attempts: int = MAX_ATTEMPTS
    clock: Callable[[], float] = time.time
    randbelow: Callable[[int], int] = secrets.randbelow
    shown: ShownCode | None = None
    attempts: int = 0
    _attempts: dict[str, _Attempt] = field(default_factory=dict)

    def new_code(self) -> ShownCode:
        """Show a fresh code (the previous one stops working)."""
        self.shown = ShownCode(self.device_id, generate_code(self.randbelow), self.clock() + self.ttl_s)
        self.attempts = 0
        self._attempts.clear()
        return self.shown

    def clear(self) -> None:
        """Stop showing a code."""
        self.shown = None
        self._attempts = {k: a for k, a in self._attempts.items() if a.credential_id is not None}

    def current(self) -> ShownCode | None:
        """The code on screen, if it is still valid."""
        if self.shown is not None and self.clock() >= self.shown.expires_at:
            self.clear()
        return self.shown

    def answer(
        self, attempt_id: str, msg_a: bytes, *, credential_id: str | None = None, new_credential_id: str | None = None
    ) -> tuple[bytes, bytes]:
        """SPAKE2's second message and the screen's confirmation for a controller's first message."""
        from spake2 import SPAKE2_B

        if credential_id is not None:
            secret = self.credentials.get(credential_id)
            if secret is None:
                raise PairingError("unknown_credential", "this screen does not know that pairing credential")
            password = _password(None, secret)
        else:
            shown = self.current()
            if shown is None:
                raise PairingError("no_code", "no pairing code is shown")
            if self.attempts >= self.max_attempts:
                self.clear()
                raise PairingError("burnt", "this code had too many attempts")
            self.attempts += 1
            # One attempt at a time: a new one replaces any that was not finished (that counted already).
            self._attempts = {k: a for k, a in self._attempts.items() if a.credential_id is not None}
            password = _password(shown.code, None)
        id_a, id_b = _identities(self.device_id, credential_id)
        spake = SPAKE2_B(password, idA=id_a, idB=id_b)
        msg_b: bytes = spake.start()
        try:
            k = spake.finish(msg_a)
        except Exception as exc:
            raise PairingError("malformed", f"the controller's message is not valid ({type(exc).__name__})") from None
        keys = _schedule(k, msg_a, msg_b)
        self._attempts[attempt_id] = _Attempt(spake, msg_a, credential_id, new_credential_id, keys)
        if len(self._attempts) > 64:  # unfinished credential attempts: keep the newest
            del self._attempts[next(iter(self._attempts))]
        return msg_b, keys.confirm_b

    def verify(self, attempt_id: str, confirm_a: bytes, info: dict[str, Any] | None = None) -> Paired:
        """Check the controller's confirmation: :class:`Paired` when the code (or credential) was right."""
        attempt = self._attempts.pop(attempt_id, None)
        if attempt is None or attempt.keys is None:
            raise PairingError("unknown_attempt", "no such pairing attempt (finished, replaced or expired)")
        if not hmac.compare_digest(attempt.keys.confirm_a, confirm_a):
            if attempt.credential_id is None and self.attempts >= self.max_attempts:
                self.clear()
            raise PairingError("wrong_code", "the controller's confirmation does not match")
        if attempt.credential_id is not None:
            return Paired(attempt.keys.session, attempt.credential_id, None)
        self.clear()  # a code works once
        secret = attempt.keys.credential if attempt.new_credential_id else None
        if attempt.new_credential_id and secret is not None:
            self.credentials.put(attempt.new_credential_id, secret, dict(info or {}))
        return Paired(attempt.keys.session, attempt.new_credential_id, secret)

    def abandon(self, attempt_id: str) -> None:
        with contextlib.suppress(KeyError):
            del self._attempts[attempt_id]


__all__ = [
    "CODE_DIGITS",
    "CODE_TTL_S",
    "MAX_ATTEMPTS",
    "URI_PREFIX",
    "ControllerPairing",
    "CredentialStore",
    "FileCredentials",
    "MemoryCredentials",
    "Paired",
    "PairingError",
    "ScreenPairing",
    "ShownCode",
    "b64",
    "generate_code",
    "grouped",
    "is_trivial",
    "normalise_code",
    "pair_uri",
    "parse_pair_uri",
    "qr_svg",
    "unb64",
    "verhoeff_digit",
    "verhoeff_valid",
]
