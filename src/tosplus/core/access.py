"""Where device credentials must also be known: the broker's account store.

The embedded broker asks the registry on every connection, so it only needs to drop live connections; an
external Mosquitto keeps its own accounts, which the hub provisions through its dynamic-security plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class BrokerAccounts(Protocol):
    pending: int  # accounts accepted but not yet on the broker (large imports run in the background)

    async def upsert(self, creds: Sequence[tuple[str, str]]) -> None: ...
    async def set_secret(self, device_id: str, secret: str) -> None: ...
    async def revoke(self, device_id: str) -> None: ...
    async def set_enabled(self, device_id: str, enabled: bool) -> None: ...
    async def remove(self, device_ids: Sequence[str]) -> None: ...


class NoAccounts:
    """For tests and tools that run the hub without any broker."""

    pending = 0

    async def upsert(self, creds: Sequence[tuple[str, str]]) -> None:
        return None

    async def set_secret(self, device_id: str, secret: str) -> None:
        return None

    async def revoke(self, device_id: str) -> None:
        return None

    async def set_enabled(self, device_id: str, enabled: bool) -> None:
        return None

    async def remove(self, device_ids: Sequence[str]) -> None:
        return None
