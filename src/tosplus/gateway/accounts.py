"""Broker account stores behind the :class:`~tosplus.core.access.BrokerAccounts` protocol."""

from __future__ import annotations

from collections.abc import Sequence

from tosplus.gateway.dynsec import DynsecAdmin
from tosplus.gateway.embedded import EmbeddedBroker


class EmbeddedAccounts:
    """The embedded broker asks the registry at every connection; we only drop live sessions."""

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
    """An external Mosquitto with the dynamic-security plugin holds its own copy of every account."""

    def __init__(self, admin: DynsecAdmin) -> None:
        self.admin = admin

    async def upsert(self, creds: Sequence[tuple[str, str]]) -> None:
        await self.admin.upsert_devices(creds)

    async def set_secret(self, device_id: str, secret: str) -> None:
        await self.admin.set_password(device_id, secret)
        await self.admin.disable_device(device_id)  # drops a session still using the old secret

    async def revoke(self, device_id: str) -> None:
        # Mosquitto has no "no password" state: disabling refuses and drops the device until new credentials.
        await self.admin.disable_device(device_id)

    async def set_enabled(self, device_id: str, enabled: bool) -> None:
        if enabled:
            await self.admin.enable_device(device_id)
        else:
            await self.admin.disable_device(device_id)

    async def remove(self, device_ids: Sequence[str]) -> None:
        await self.admin.remove_devices(device_ids)
