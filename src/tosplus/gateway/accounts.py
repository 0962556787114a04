"""Broker account stores behind the :class:`~tosplus.core.access.BrokerAccounts` protocol."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence

from tosplus.gateway.dynsec import DynsecAdmin
from tosplus.gateway.embedded import EmbeddedBroker

log = logging.getLogger(__name__)


class EmbeddedAccounts:
    """The embedded broker asks the registry at every connection; we only drop live sessions."""

    pending = 0

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker

    async def upsert(self, creds: Sequence[tuple[str, str]]) -> None:
        return None

    async def set_secret(self, device_id: str, secret: str) -> None:
        await self.broker.disconnect_client(device_id)

    async def revoke(self, device_id: str) -> None:
        await self.broker.disconnect_client(device_id)

    async def set_enabled(self, device_id: str, enabled: bool) -> None:
        if not enabled:
            await self.broker.disconnect_client(device_id)

    async def remove(self, device_ids: Sequence[str]) -> None:
        for device_id in device_ids:
            await self.broker.disconnect_client(device_id)


class MosquittoAccounts:
    """An external Mosquitto with the dynamic-security plugin holds its own copy of every account.

    Mosquitto 2.0 rewrites its whole account file after every change, so adding thousands of accounts takes
    minutes (10,000: about 11 minutes on 2 cores). Up to ``INLINE_LIMIT`` accounts are added before the call
    returns; larger imports continue in the background (``pending`` counts them, the hub's status shows it)
    and are retried until the broker has them all.
    """

    INLINE_LIMIT = 500

    def __init__(self, admin: DynsecAdmin) -> None:
        self.admin = admin
        self.pending = 0
        self._imports: set[asyncio.Task[None]] = set()

    async def upsert(self, creds: Sequence[tuple[str, str]]) -> None:
        if len(creds) <= self.INLINE_LIMIT:
            await self.admin.upsert_devices(creds)
            return
        self.pending += len(creds)
        task = asyncio.create_task(self._import(list(creds)))
        self._imports.add(task)
        task.add_done_callback(self._imports.discard)

    async def _import(self, creds: list[tuple[str, str]]) -> None:
        delay = 1.0
        for start in range(0, len(creds), self.INLINE_LIMIT):
            chunk = creds[start : start + self.INLINE_LIMIT]
            while True:
                try:
                    await self.admin.upsert_devices(chunk)  # idempotent: safe to repeat after a failure
                    break
                except Exception:
                    log.exception(
                        "adding %d device accounts to the broker failed; retrying in %.0fs", len(chunk), delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)
            self.pending -= len(chunk)

    async def close(self) -> None:
        for task in list(self._imports):
            task.cancel()

    async def set_secret(self, device_id: str, secret: str) -> None:
        await self.admin.set_password(device_id, secret)  # Mosquitto drops a session using the old secret

    async def revoke(self, device_id: str) -> None:
        # Mosquitto has no "no password" state: an unknown random password, and the account disabled, so that
        # neither the old secret nor a later enable lets anyone in before new credentials are issued.
        await self.admin.set_password(device_id, secrets.token_urlsafe(32))
        await self.admin.disable_device(device_id)

    async def set_enabled(self, device_id: str, enabled: bool) -> None:
        if enabled:
            await self.admin.enable_device(device_id)
        else:
            await self.admin.disable_device(device_id)

    async def remove(self, device_ids: Sequence[str]) -> None:
        await self.admin.remove_devices(device_ids)
