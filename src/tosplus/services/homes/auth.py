"""Sign-in sessions, access tokens, refresh tokens and personal API keys; turning a bearer token into a caller.

- Access tokens are JWTs (HS256, 15 minutes) signed with a key kept in the database, so checking one costs no
  database round trip; a token is refused when its session has ended or its owner signed out everywhere.
- Refresh tokens rotate on every use; presenting one that was already replaced ends the whole session, as
  only a thief would hold the old one (OAuth 2.0 Security BCP, refresh token rotation).
- API keys are long-lived opaque bearer tokens acting as their owner, revocable one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import hash_secret, new_id, now_ms
from tosplus.core.tokens import Principal, Tokens
from tosplus.errors import InvalidInput, NotFound, Unauthorized
from tosplus.services.homes import tables as t
from tosplus.services.homes.accounts import Accounts, User
from tosplus.services.homes.limits import FailureLimiter

ACCESS_TTL_S = 15 * 60
REFRESH_TTL_S = 30 * 24 * 3600
API_KEY_PREFIX = "tpk_"
_ALGORITHM = "HS256"
_CHECKED_MAX = 20_000  # tokens whose signature was checked, remembered (~1 KB each)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a sign-in or refresh gives the client."""

    user: User
    session_id: str
    access_token: str
    refresh_token: str

    def to_json(self, *, with_refresh: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": ACCESS_TTL_S,
            "user": self.user.to_json(),
        }
        if with_refresh:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True, slots=True)
class _Key:
    id: str
    user_id: str


class Auth:
    def __init__(self, engine: AsyncEngine, accounts: Accounts, operator_tokens: Tokens) -> None:
        self.engine = engine
        self.accounts = accounts
        self.operator_tokens = operator_tokens
        self._signing_key = ""
        self._keys: dict[str, _Key] = {}  # API key hash -> key
        self._ended_sessions: set[str] = set()
        self._key_used: dict[str, int] = {}
        self._checked: dict[str, dict[str, Any]] = {}  # access token -> its verified claims (oldest first)
        # Password spraying (a few guesses at many accounts) never locks one account; the address is limited.
        self.signin_misses = FailureLimiter(50, 600, "sign-ins from this address")

    async def load(self) -> None:
        async with self.engine.begin() as conn:
            secret = (
                await conn.execute(sa.select(t.signing_keys.c.secret).where(t.signing_keys.c.name == "access"))
            ).scalar()
            if secret is None:
                secret = secrets.token_urlsafe(48)
                await conn.execute(sa.insert(t.signing_keys).values(name="access", secret=secret, created_at=now_ms()))
            self._signing_key = secret
            keys = await conn.execute(sa.select(t.api_keys).where(t.api_keys.c.revoked_at.is_(None)))
            self._keys = {k.key_hash: _Key(k.id, k.user_id) for k in keys}
            # Sessions ended within an access token's lifetime: their access tokens must stay refused.
            ended = await conn.execute(
                sa.select(t.sessions.c.id).where(t.sessions.c.revoked_at > now_ms() - ACCESS_TTL_S * 1000 - 60_000)
            )
            self._ended_sessions = {r.id for r in ended}

    # -- tokens to callers ------------------------------------------------------------------------------------

    async def verify(self, token: str) -> Principal:
        """The caller a bearer token stands for; :class:`Unauthorized` for anything else."""
        if token.count(".") == 2:
            return self._verify_access(token)
        if token.startswith(API_KEY_PREFIX):
            key = self._keys.get(hash_secret(token))
            if key is not None and key.user_id in self.accounts.users:
                self._note_key_use(key)
                return principal_of(self.accounts.users[key.user_id], None)
            raise Unauthorized("this API key is not valid (revoked or mistyped)")
        return self.operator_tokens.verify(token)

    def _verify_access(self, token: str) -> Principal:
        claims = self._checked.get(token)
        if claims is None or claims["exp"] <= time.time():
            claims = self._decode(token)
        user = self.accounts.users.get(claims["sub"])
        if user is None or claims["sid"] in self._ended_sessions or claims["ims"] < user.tokens_valid_after:
            raise Unauthorized("this session has ended; sign in again")
        return principal_of(user, claims["sid"])

    def _decode(self, token: str) -> dict[str, Any]:
        """Check signature and expiry; remember the claims of a good token, so its next use skips the decode
        (a quarter of an authorised read's time). Sessions and sign-out are still checked on every use."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._signing_key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "sid", "ims"]}
            )
        except jwt.ExpiredSignatureError as exc:
            self._checked.pop(token, None)
            raise Unauthorized("the access token has expired; refresh it or sign in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("a valid bearer token is required") from exc
        if len(self._checked) >= _CHECKED_MAX:
            self._checked.pop(next(iter(self._checked)))
        self._checked[token] = claims
        return claims

    def _access_token(self, user: User, session_id: str) -> str:
        moment = now_ms()
        claims = {"sub": user.id, "sid": session_id, "ims": moment, "iat": moment // 1000}
        claims["exp"] = moment // 1000 + ACCESS_TTL_S
        return jwt.encode(claims, self._signing_key, algorithm=_ALGORITHM)

    def _note_key_use(self, key: _Key) -> None:
        """Record a key's last use at most once a minute, off the request's path."""
        moment = now_ms()
        if moment - self._key_used.get(key.id, 0) < 60_000:
            return
        self._key_used[key.id] = moment

        async def write() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(sa.update(t.api_keys).where(t.api_keys.c.id == key.id).values(last_used_at=moment))

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(write())

    # -- sessions ---------------------------------------------------------------------------------------------

    async def sign_in(
        self, email: str, password: str, *, kind: str, user_agent: str | None = None, ip: str | None = None
    ) -> Grant:
        client = ip or "unknown"
        self.signin_misses.check(client)
        try:
            user = await self.accounts.check_password(email, password)
        except Unauthorized:
            self.signin_misses.failed(client)
            raise
        session_id, refresh = new_id("ses"), secrets.token_urlsafe(32)
        moment = now_ms()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(t.sessions).values(
                    id=session_id,
                    user_id=user.id,
                    refresh_hash=hash_secret(refresh),
                    kind=kind,
                    created_at=moment,
                    last_used_at=moment,
                    expires_at=moment + REFRESH_TTL_S * 1000,
                    user_agent=(user_agent or "")[:300] or None,
                    ip=ip,
                )
            )
        return Grant(user, session_id, self._access_token(user, session_id), refresh)

    async def refresh(self, refresh_token: str) -> Grant:
        """A new access token and a new refresh token for a live session; the old refresh token stops working."""
        digest, moment = hash_secret(refresh_token), now_ms()
        new_refresh = secrets.token_urlsafe(32)
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(t.sessions).where(t.sessions.c.refresh_hash == digest))).first()
            if row is None:
                reused = (
                    await conn.execute(sa.select(t.sessions.c.id).where(t.sessions.c.previous_hash == digest))
                ).scalar()
                if reused is not None:
                    await conn.execute(
                        sa.update(t.sessions)
                        .where(t.sessions.c.id == reused, t.sessions.c.revoked_at.is_(None))
                        .values(revoked_at=moment)
                    )
                    self._ended_sessions.add(reused)
            elif row.revoked_at is None and row.expires_at > moment:
                await conn.execute(
                    sa.update(t.sessions)
                    .where(t.sessions.c.id == row.id)
                    .values(refresh_hash=hash_secret(new_refresh), previous_hash=digest, last_used_at=moment)
                )
        if row is None or row.revoked_at is not None or row.expires_at <= moment:
            raise Unauthorized("this session has ended; sign in again")
        user = self.accounts.users.get(row.user_id)
        if user is None:
            raise Unauthorized("this session has ended; sign in again")
        return Grant(user, row.id, self._access_token(user, row.id), new_refresh)

    async def end_session_of(self, refresh_token: str) -> None:
        """End the session this refresh token belongs to (console sign-out); nothing if it is unknown."""
        async with self.engine.begin() as conn:
            ended = await conn.execute(
                sa.update(t.sessions)
                .where(t.sessions.c.refresh_hash == hash_secret(refresh_token), t.sessions.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
                .returning(t.sessions.c.id)
            )
            self._ended_sessions.update(r.id for r in ended)

    async def end_session(self, user_id: str, session_id: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(t.sessions)
                .where(
                    t.sessions.c.id == session_id, t.sessions.c.user_id == user_id, t.sessions.c.revoked_at.is_(None)
                )
                .values(revoked_at=now_ms())
            )
        if result.rowcount == 0:
            raise NotFound(f"no open session '{session_id}'")
        self._ended_sessions.add(session_id)

    async def end_all(self, user_id: str) -> None:
        async with self.engine.begin() as conn:
            ended = await conn.execute(
                sa.update(t.sessions)
                .where(t.sessions.c.user_id == user_id, t.sessions.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
                .returning(t.sessions.c.id)
            )
            self._ended_sessions.update(r.id for r in ended)
        await self.accounts.invalidate_tokens(user_id)

    async def list_sessions(self, user_id: str, current: str | None) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.sessions)
                .where(
                    t.sessions.c.user_id == user_id,
                    t.sessions.c.revoked_at.is_(None),
                    t.sessions.c.expires_at > now_ms(),
                )
                .order_by(t.sessions.c.created_at.desc())
            )
            return [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "created_at": r.created_at,
                    "last_used_at": r.last_used_at,
                    "user_agent": r.user_agent,
                    "ip": r.ip,
                    "current": r.id == current,
                }
                for r in rows
            ]

    # -- API keys ---------------------------------------------------------------------------------------------

    async def create_api_key(self, user_id: str, name: str) -> dict[str, Any]:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name must be 1 to 200 characters")
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        row: dict[str, Any] = {
            "id": new_id("key"),
            "name": name,
            "prefix": key[:10],
            "created_at": now_ms(),
            "last_used_at": None,
        }
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.api_keys).values(**row, user_id=user_id, key_hash=hash_secret(key)))
        self._keys[hash_secret(key)] = _Key(row["id"], user_id)
        return {**row, "key": key}

    async def list_api_keys(self, user_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.api_keys)
                .where(t.api_keys.c.user_id == user_id, t.api_keys.c.revoked_at.is_(None))
                .order_by(t.api_keys.c.created_at)
            )
            return [
                {
                    "id": r.id,
                    "name": r.name,
                    "prefix": r.prefix,
                    "created_at": r.created_at,
                    "last_used_at": r.last_used_at,
                }
                for r in rows
            ]

    async def revoke_api_key(self, user_id: str, key_id: str) -> None:
        async with self.engine.begin() as conn:
            digest = (
                await conn.execute(
                    sa.update(t.api_keys)
                    .where(
                        t.api_keys.c.id == key_id, t.api_keys.c.user_id == user_id, t.api_keys.c.revoked_at.is_(None)
                    )
                    .values(revoked_at=now_ms())
                    .returning(t.api_keys.c.key_hash)
                )
            ).scalar()
        if digest is None:
            raise NotFound(f"no API key '{key_id}'")
        self._keys.pop(digest, None)


def principal_of(user: User, session_id: str | None = None) -> Principal:
    """The caller a person is (``session_id``: the sign-in session it came with, if any)."""
    return Principal(user.id, user.email, user.role, user.id, session_id, user.manufacturer)
