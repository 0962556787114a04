"""Identifiers, secrets and clocks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time


def now_ms() -> int:
    return int(time.time() * 1000)


def new_device_id() -> str:
    """20 lowercase hex characters: safe as MQTT username, client id and topic level."""
    return secrets.token_hex(10)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_secret() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 of a machine secret.

    Device secrets and tokens are 256-bit random strings, not human passwords: a slow password hash adds no
    protection against guessing there, and would cost ~50 ms of CPU on every device connection.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str | None) -> bool:
    return digest is not None and hmac.compare_digest(hash_secret(secret), digest)
