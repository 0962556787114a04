"""People's accounts: sign-up, passwords (argon2id), lock-out after repeated failures, roles.

All accounts are kept in memory (a few hundred bytes each), so checking a token needs no database round trip;
every change is written through to the database first.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import new_id, now_ms
from tosplus.core.tokens import MANUFACTURER, PERSON, ROLES
from tosplus.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from tosplus.services.homes import tables as t

MAX_FAILED_LOGINS = 5
LOCK_S = 15 * 60
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()  # argon2id with the library's defaults (RFC 9106's second recommendation)
# Checked against when the e-mail is unknown, so a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("an account that does not exist")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: str
    manufacturer: str | None
    created_at: int
    tokens_valid_after: int
    password_hash: str
    failed_logins: int = 0
    locked_until: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "manufacturer": self.manufacturer,
            "created_at": self.created_at,
        }


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL.match(email):
        raise InvalidInput("email must look like name@example.com")
    return email


def check_password_rules(password: str) -> None:
    if not 8 <= len(password) <= 256:
        raise InvalidInput("password must be 8 to 256 characters long")
    if len(set(password)) < 3:
        raise InvalidInput("password is too simple: use at least three different characters")


class Accounts:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.users: dict[str, User] = {}
        self._by_email: dict[str, str] = {}

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.users))).all()
        for row in rows:
            self._remember(_user(row))

    def _remember(self, user: User) -> User:
        self.users[user.id] = user
        self._by_email[user.email] = user.id
        return user

    def get(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise NotFound(f"no user '{user_id}'")
        return user

    def by_email(self, email: str) -> User | None:
        user_id = self._by_email.get(email.strip().lower())
        return self.users.get(user_id) if user_id else None

    async def sign_up(
        self, email: str, password: str, name: str, role: str = PERSON, manufacturer: str | None = None
    ) -> User:
        email = normalise_email(email)
        check_password_rules(password)
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name must be 1 to 200 characters")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if (role == MANUFACTURER) != bool(manufacturer):
            raise InvalidInput("a manufacturer account needs a manufacturer name, and only it has one")
        if email in self._by_email:
            raise Conflict("an account with this e-mail already exists")
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        user = User(new_id("usr"), email, name, role, manufacturer, now_ms(), 0, password_hash)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.insert(t.users).values(
                        id=user.id,
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        role=role,
                        manufacturer=manufacturer,
                        created_at=user.created_at,
                        failed_logins=0,
                        tokens_valid_after=0,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("an account with this e-mail already exists") from exc
        return self._remember(user)

    async def check_password(self, email: str, password: str) -> User:
        """The account for these credentials; counts failures and locks the account after too many."""
        user = self.by_email(email)
        if user is None:
            await asyncio.to_thread(_verify, _DUMMY_HASH, password)
            raise Unauthorized("wrong e-mail or password")
        now = now_ms()
        if user.locked_until and user.locked_until > now:
            wait = (user.locked_until - now) // 1000 + 1
            raise RateLimited(
                f"this account is locked after {MAX_FAILED_LOGINS} wrong passwords; try again in {wait} s",
                retry_after_s=wait,
            )
        if not await asyncio.to_thread(_verify, user.password_hash, password):
            failed = user.failed_logins + 1
            locked = now + LOCK_S * 1000 if failed >= MAX_FAILED_LOGINS else None
            await self._set_login_state(user, 0 if locked else failed, locked)
            if locked:
                raise RateLimited(
                    f"this account is now locked for {LOCK_S // 60} minutes after {MAX_FAILED_LOGINS} wrong passwords",
                    retry_after_s=LOCK_S,
                )
            raise Unauthorized("wrong e-mail or password")
        if user.failed_logins or user.locked_until:
            await self._set_login_state(user, 0, None)
        return self.users[user.id]

    async def unlock(self, user_id: str) -> User:
        user = self.get(user_id)
        await self._set_login_state(user, 0, None)
        return self.users[user_id]

    async def _set_login_state(self, user: User, failed: int, locked_until: int | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.users)
                .where(t.users.c.id == user.id)
                .values(failed_logins=failed, locked_until=locked_until)
            )
        self._remember(replace(self.users[user.id], failed_logins=failed, locked_until=locked_until))

    async def set_password(self, user_id: str, password: str) -> None:
        check_password_rules(password)
        self.get(user_id)
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.users)
                .where(t.users.c.id == user_id)
                .values(password_hash=password_hash, failed_logins=0, locked_until=None)
            )
        self._remember(replace(self.users[user_id], password_hash=password_hash, failed_logins=0, locked_until=None))

    async def invalidate_tokens(self, user_id: str) -> int:
        """Refuse every access token issued before now (sign-out everywhere)."""
        moment = now_ms()
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(t.users).where(t.users.c.id == user_id).values(tokens_valid_after=moment))
        self._remember(replace(self.get(user_id), tokens_valid_after=moment))
        return moment


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _user(row: Any) -> User:
    return User(
        row.id,
        row.email,
        row.name,
        row.role,
        row.manufacturer,
        row.created_at,
        row.tokens_valid_after or 0,
        row.password_hash,
        row.failed_logins or 0,
        row.locked_until,
    )
