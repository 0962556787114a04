"""The persistent part of sessions: pairing credentials (who holds one for which screen, never the secret) and
each home's session settings. Both are kept in memory too: they are read on every pairing and every sweep."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.services.sessions import tables as t


@dataclass(slots=True)
class Credential:
    id: str
    user_id: str
    device_id: str
    home_id: str
    name: str
    created_at: int
    last_used_at: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "home_id": self.home_id,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.credentials: dict[str, Credential] = {}
        self.guests_may_control: dict[str, bool] = {}  # home id -> setting (absent: the default, off)

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            for row in await conn.execute(sa.select(t.pairing_credentials)):
                self.credentials[row.id] = Credential(
                    row.id, row.user_id, row.device_id, row.home_id, row.name, row.created_at, row.last_used_at
                )
            for row in await conn.execute(sa.select(t.session_home_settings)):
                self.guests_may_control[row.home_id] = bool(row.guests_may_control)

    # -- credentials ----------------------------------------------------------------------------------------

    async def add_credential(self, credential: Credential) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(t.pairing_credentials).values(
                    id=credential.id,
                    user_id=credential.user_id,
                    device_id=credential.device_id,
                    home_id=credential.home_id,
                    name=credential.name,
                    created_at=credential.created_at,
                    last_used_at=credential.last_used_at,
                )
            )
        self.credentials[credential.id] = credential

    async def used(self, credential: Credential) -> None:
        credential.last_used_at = now_ms()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.pairing_credentials)
                .where(t.pairing_credentials.c.id == credential.id)
                .values(last_used_at=credential.last_used_at)
            )

    async def remove_credentials(self, ids: list[str]) -> None:
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.pairing_credentials).where(t.pairing_credentials.c.id.in_(ids)))
        for credential_id in ids:
            self.credentials.pop(credential_id, None)

    def of_user(self, user_id: str) -> list[Credential]:
        return sorted(
            (c for c in self.credentials.values() if c.user_id == user_id), key=lambda c: (c.created_at, c.id)
        )

    def of_device(self, device_id: str) -> list[Credential]:
        return [c for c in self.credentials.values() if c.device_id == device_id]

    # -- home settings --------------------------------------------------------------------------------------

    async def set_guests_may_control(self, home_id: str, value: bool, by: str | None) -> None:
        moment = now_ms()
        async with self.engine.begin() as conn:
            updated = await conn.execute(
                sa.update(t.session_home_settings)
                .where(t.session_home_settings.c.home_id == home_id)
                .values(guests_may_control=value, updated_at=moment, updated_by=by)
            )
            if updated.rowcount == 0:
                await conn.execute(
                    sa.insert(t.session_home_settings).values(
                        home_id=home_id, guests_may_control=value, updated_at=moment, updated_by=by
                    )
                )
        self.guests_may_control[home_id] = value
