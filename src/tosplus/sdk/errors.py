"""The SDK's one root exception (its own module so that every part of the SDK can raise it)."""

from __future__ import annotations


class DeviceError(Exception):
    """Misuse of the SDK, or a wait (``flush``, ``wait_connected``) that timed out."""
