"""Short codes people type or scan: binding codes and invitation codes.

Crockford's base32 alphabet (no I, L, O, U) so that codes read aloud or off a sticker are not mistyped;
reading a code forgives case, dashes, spaces and the look-alikes I/L (1) and O (0).
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOK_ALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalise(code: str) -> str:
    """The code as issued, from what a person typed; "" when it cannot be one."""
    cleaned = "".join(code.split()).replace("-", "").upper().translate(_LOOK_ALIKES)
    return cleaned if cleaned and len(cleaned) <= 32 and all(c in ALPHABET for c in cleaned) else ""


def grouped(code: str) -> str:
    """``ABCD-EFGH`` for people; the dash is ignored when read back."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
