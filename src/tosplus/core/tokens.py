"""Who is calling, and the bootstrap operator tokens.

People's accounts, sessions and API keys live in ``services/homes``; this module knows only the operator
tokens that exist before any account does (``TOSPLUS_ADMIN_TOKEN`` or the generated ``admin-token`` file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import hash_secret, new_id, new_secret, now_ms
from tosplus.errors import Unauthorized
from tosplus.storage import tables as t

TOKEN_FILE = "admin-token"


OPERATOR = "operator"
PERSON = "person"
MANUFACTURER = "manufacturer"
ROLES = (PERSON, OPERATOR, MANUFACTURER)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an API request or live stream."""

    id: str  # the operator token's id, or the person's user id
    name: str  # what the audit log shows: an e-mail or the token's name
    role: str  # operator | person | manufacturer
    user_id: str | None = None
    session_id: str | None = None
    manufacturer: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


@dataclass(frozen=True, slots=True)
class AdminToken:
    token: str | None  # the token itself, when it was created now and must be shown once
    file: Path | None  # where a generated token was written


class Tokens:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._by_hash: dict[str, Principal] = {}

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.revoked_at.is_(None)))
            # Tokens written before people existed carry the role "admin": they are operators.
            self._by_hash = {r.token_hash: Principal(r.id, r.name, OPERATOR) for r in rows}

    async def ensure_admin(self, configured: str, data_dir: Path) -> AdminToken:
        """Use ``configured`` as an admin token, or create one on first start and write it to data_dir."""
        if configured:
            if hash_secret(configured) not in self._by_hash:
                await self._add(configured, "admin (TOSPLUS_ADMIN_TOKEN)")
            return AdminToken(None, None)
        path = data_dir / TOKEN_FILE
        if self._by_hash:
            return AdminToken(None, path if os.path.exists(path) else None)
        token = new_secret()
        await self._add(token, "admin (generated at first start)")
        os.makedirs(data_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        return AdminToken(token, path)

    async def _add(self, token: str, name: str) -> Principal:
        principal = Principal(new_id("tok"), name, OPERATOR)
        digest = hash_secret(token)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(t.api_tokens).values(
                    id=principal.id, token_hash=digest, name=name, role=OPERATOR, created_at=now_ms()
                )
            )
        self._by_hash[digest] = principal
        return principal

    def find(self, token: str) -> Principal | None:
        return self._by_hash.get(hash_secret(token)) if token else None

    def verify(self, token: str) -> Principal:
        principal = self.find(token)
        if principal is None:
            raise Unauthorized("a valid bearer token is required")
        return principal
