"""Idempotency keys for money-moving API calls: Stripe's semantics, made strict.

A money-moving request carries an ``Idempotency-Key``. Per scope (the caller and the route) the first request
with a key acts and its answer is stored; a retry with the same key and the same request gets that answer
again (marked ``Idempotent-Replayed: true``) without acting; the same key with a different request is refused
(409); while the first request is still acting, another with its key is refused (409, ``Retry-After: 1``).

Who acts is decided by the database: the first request inserts the key's row (``in_progress``) in its own short
transaction, and the primary key (scope, key) lets exactly one insert win, whichever hub process it comes from.
The action runs outside that transaction, and its answer is stored afterwards (``done``).

What is stored:

- answers below 500, including client errors the action raised (a :class:`TosError` with a 4xx status, such as
  insufficient funds or a suspended token): the request was judged and nothing changed, so its retry gets the
  same judgement. Not stored: 408, 425 and 429, which say "try again later" and would otherwise say it for ever.
- not answers of 500 and above, nor unexpected exceptions: the key's row is deleted, so a retry acts again. This
  is safe because the action is atomic (money moves in one database transaction): when it fails, nothing was
  committed. It requires that the action raise nothing after its commit, and it cannot cover a commit whose
  outcome is unknown (the connection lost during COMMIT); there the ledger's own idempotency is the guard, which
  is why actions should derive their transfer ids from the key (:func:`derived_id`).

A request cut off while acting (the hub stopped, the task cancelled) leaves its key ``in_progress``: whether it
committed is unknown, so nobody may act on the key until it expires, or, with ``lock_timeout_s``, until the
claim is that old. Set ``lock_timeout_s`` only for actions that are idempotent themselves (transfer ids derived
from the key), because the new claimant may repeat an action that did commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from tosplus.api.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from tosplus.api.problems import problem
from tosplus.core.ids import now_ms
from tosplus.errors import Conflict, InvalidInput, TosError
from tosplus.services.payments.tables_idempotency import KEY_MAX, SCOPE_MAX, idempotency_keys

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_TTL_S = 86400
MIN_TTL_S = 86400  # the promise: keys are kept at least 24 hours
NOT_STORED = frozenset({408, 425, 429})  # "try again later": a stored copy would say it for ever
_CLAIM_ATTEMPTS = 5

log = logging.getLogger("tosplus.payments.idempotency")
t = idempotency_keys

Action = Callable[[], Awaitable["StoredResponse"]]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as it is sent, and sent again to a retry."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # extra headers worth replaying, e.g. ("Location", "/api/...")

    @classmethod
    def of_json(cls, content: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> StoredResponse:
        return cls(status, orjson.dumps(content), "application/json", headers)

    def to_response(self, *, replayed: bool = False) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.body, self.status, headers=headers, media_type=self.media_type)


class KeyReused(Conflict):
    """The key was used, in this scope, for a different request."""


class KeyInProgress(Conflict):
    """A request with the key is still acting; the API answers with ``Retry-After: 1``."""

    retry_after_s = 1


def check_key(key: str) -> str:
    """The key, if it is 1 to 255 printable ASCII characters; :class:`InvalidInput` otherwise."""
    if not 1 <= len(key) <= KEY_MAX or not all(" " <= c <= "~" for c in key):
        raise InvalidInput(f"{HEADER} must be 1 to {KEY_MAX} printable ASCII characters")
    return key


def canonical_json(value: Any) -> bytes:
    """One text per JSON value: keys sorted, no whitespace, ASCII only. Values keep their types (1, 1.0 and
    true differ)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the request body is not plain JSON: {exc}") from None
    return text.encode("ascii")


def fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 (hex) of the method, the path and the body as canonical JSON.

    ``body`` is a JSON value, or the raw bytes of a request: parsed as JSON when they are JSON (so key order
    and whitespace do not matter), taken as they are otherwise; an empty body counts as ``null``.
    """
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if not raw.strip():
            content = canonical_json(None)
        else:
            try:
                content = canonical_json(json.loads(raw))
            except (ValueError, InvalidInput):
                content = b"raw:" + raw  # no canonical JSON text starts with "r"
    else:
        content = canonical_json(body)
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "surrogatepass"), content):
        digest.update(part)
        digest.update(b"\n")
    return digest.hexdigest()


def derived_id(scope: str, key: str, label: str = "") -> str:
    """A stable id for something the action creates (a ledger transfer, an order), the same for every retry
    with this key: a repeated action then collides with its own first attempt instead of acting twice."""
    return hashlib.sha256(f"{scope}\n{key}\n{label}".encode()).hexdigest()[:32]


def _error_answer(exc: TosError) -> StoredResponse:
    """The problem document the API would send for ``exc`` (see :mod:`tosplus.api.problems`)."""
    rendered = problem(exc.status, exc.title, exc.detail)
    headers = tuple((k, v) for k, v in rendered.headers.items() if k.lower() == "www-authenticate")
    return StoredResponse(rendered.status_code, bytes(rendered.body), PROBLEM_MEDIA_TYPE, headers)


class Idempotency:
    """The store of idempotency keys and their first answers."""

    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: int = DEFAULT_TTL_S,
        *,
        lock_timeout_s: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if ttl_s < MIN_TTL_S:
            raise ValueError(f"idempotency keys must be kept at least {MIN_TTL_S} s")
        if lock_timeout_s is not None and lock_timeout_s <= 0:
            raise ValueError("lock_timeout_s must be positive")
        self.engine = engine
        self.ttl_ms = ttl_s * 1000
        self.lock_timeout_ms = None if lock_timeout_s is None else lock_timeout_s * 1000
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def run(
        self, scope: str, key: str | None, fingerprint: str, action: Action, *, require_key: bool = True
    ) -> tuple[StoredResponse, bool]:
        """The answer to this request, and whether it is a replay of an earlier one.

        Raises :class:`InvalidInput` for a missing (when required) or malformed key, :class:`KeyReused` when the
        key was used for a different request, :class:`KeyInProgress` while another request with it acts, and
        whatever the action raised when that is not stored (see the module's documentation).
        """
        if key is None:
            if require_key:
                raise InvalidInput(f"{HEADER} header is required")
            return await action(), False
        check_key(key)
        if not 1 <= len(scope) <= SCOPE_MAX:
            raise ValueError(f"an idempotency scope must be 1 to {SCOPE_MAX} characters")
        claim = await self._claim(scope, key, fingerprint)
        if isinstance(claim, StoredResponse):
            return claim, True
        try:
            answer = await action()
        except TosError as exc:
            if exc.status >= 500 or exc.status in NOT_STORED:
                await self._release(scope, key, claim)
                raise
            answer = _error_answer(exc)
        except Exception:
            # Nothing was committed (the action is atomic): free the key so that a retry acts.
            await self._release(scope, key, claim)
            raise
        # A cancellation (BaseException) skips both branches on purpose: its outcome is unknown, so the key
        # stays in progress.
        if answer.status >= 500 or answer.status in NOT_STORED:
            await self._release(scope, key, claim)
        else:
            await self._finish(scope, key, claim, answer)
        return answer, False

    async def _claim(self, scope: str, key: str, fp: str) -> str | StoredResponse:
        """A new claim's id if this request may act; the stored answer if it was given already."""
        for _ in range(_CLAIM_ATTEMPTS):
            moment, lock_id = self.clock(), secrets.token_hex(16)
            async with self.engine.begin() as conn:
                inserted = await conn.execute(
                    self._insert(t)
                    .values(
                        scope=scope,
                        key=key,
                        fingerprint=fp,
                        state="in_progress",
                        lock_id=lock_id,
                        locked_at=moment,
                        created_at=moment,
                        expires_at=moment + self.ttl_ms,
                    )
                    .on_conflict_do_nothing(index_elements=["scope", "key"])
                )
            if inserted.rowcount == 1:
                return lock_id
            async with self.engine.begin() as conn:
                row = (await conn.execute(sa.select(t).where(t.c.scope == scope, t.c.key == key))).first()
                if row is None:
                    continue  # released or pruned since our insert lost: try again
                if row.expires_at <= moment:
                    # Expired but not yet pruned: the key is free again. Only this expired row goes, never a
                    # fresh one another request has just inserted.
                    await conn.execute(sa.delete(t).where(t.c.scope == scope, t.c.key == key, t.c.expires_at <= moment))
                    continue
                if row.fingerprint != fp:
                    raise KeyReused(f"this {HEADER} was used for a different request")
                if row.state == "done":
                    headers = tuple((str(k), str(v)) for k, v in row.headers or ())
                    return StoredResponse(row.status, bytes(row.body), row.media_type, headers)
                if self.lock_timeout_ms is not None and row.locked_at + self.lock_timeout_ms <= moment:
                    taken = await conn.execute(
                        sa.update(t)
                        .where(t.c.scope == scope, t.c.key == key, t.c.state == "in_progress")
                        .where(t.c.lock_id == row.lock_id)
                        .values(lock_id=lock_id, locked_at=moment)
                    )
                    if taken.rowcount == 1:
                        log.warning("idempotency key %r of %r: took over a claim past its lock timeout", key, scope)
                        return lock_id
                    continue
            break
        raise KeyInProgress(f"a request with this {HEADER} is still being processed; retry later")

    async def _finish(self, scope: str, key: str, lock_id: str, answer: StoredResponse) -> None:
        moment = self.clock()
        async with self.engine.begin() as conn:
            done = await conn.execute(
                sa.update(t)
                .where(t.c.scope == scope, t.c.key == key, t.c.state == "in_progress", t.c.lock_id == lock_id)
                .values(
                    state="done",
                    lock_id=None,
                    status=answer.status,
                    media_type=answer.media_type,
                    headers=[list(h) for h in answer.headers] or None,
                    body=answer.body,
                    expires_at=moment + self.ttl_ms,  # the answer is kept ttl_s from when it was given
                )
            )
        if done.rowcount != 1:
            log.warning("idempotency key %r of %r: its claim was taken over or pruned while acting", key, scope)

    async def _release(self, scope: str, key: str, lock_id: str) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.delete(t).where(
                        t.c.scope == scope, t.c.key == key, t.c.state == "in_progress", t.c.lock_id == lock_id
                    )
                )
        except Exception:
            log.exception("idempotency key %r of %r could not be released; it stays in progress", key, scope)

    async def prune(self, now_ms: int | None = None, *, batch: int = 5000) -> int:
        """Delete the keys that expired by ``now_ms`` (default: now), in transactions of ``batch`` rows so that
        other writers get their turns; how many went."""
        moment = self.clock() if now_ms is None else now_ms
        total = 0
        while True:
            async with self.engine.begin() as conn:
                rows = (
                    await conn.execute(sa.select(t.c.scope, t.c.key).where(t.c.expires_at <= moment).limit(batch))
                ).all()
                if rows:
                    deleted = await conn.execute(
                        sa.delete(t).where(
                            t.c.expires_at <= moment, sa.tuple_(t.c.scope, t.c.key).in_([(r[0], r[1]) for r in rows])
                        )
                    )
                    total += max(deleted.rowcount or 0, 0)
            if len(rows) < batch:
                return total


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """What makes two requests "the same" for an idempotency key: the scope (caller, method, route), the key
    (None when the request has none) and the fingerprint of method, path with query, and body."""

    scope: str
    key: str | None
    fingerprint: str


async def identify(request: Request, scope: str) -> RequestIdentity:
    """The request's identity, with ``scope`` naming the caller (e.g. ``f"merchant:{merchant.id}"``); the
    route's method and path template are added to it."""
    template = getattr(request.scope.get("route"), "path", request.url.path)
    path = request.url.path
    if request.url.query:
        path += "?" + urlencode(sorted(request.query_params.multi_items()))
    digest = fingerprint(request.method, path, await request.body())
    return RequestIdentity(f"{scope} {request.method} {template}", request.headers.get(HEADER), digest)


def done_row(identity: RequestIdentity, answer: StoredResponse, moment: int, ttl_ms: int) -> dict[str, Any]:
    """The key's row with its answer, for a caller that acts and stores the key in one transaction (the
    counter's batches): the insert itself is then the claim, and a conflict means another request had it."""
    return {
        "scope": identity.scope,
        "key": identity.key,
        "fingerprint": identity.fingerprint,
        "state": "done",
        "lock_id": None,
        "locked_at": None,
        "status": answer.status,
        "media_type": answer.media_type,
        "headers": [list(h) for h in answer.headers] or None,
        "body": answer.body,
        "created_at": moment,
        "expires_at": moment + ttl_ms,
    }


async def idempotent(
    request: Request, store: Idempotency, scope: str, action: Action, *, require_key: bool = True
) -> Response:
    """Answer a money-moving request through ``store``: for a route, with ``scope`` naming the caller (e.g.
    ``f"merchant:{merchant.id}"``); the route's method and path template are added to it. The fingerprint
    covers the method, the path with its query and the body."""
    identity = await identify(request, scope)
    answer, replayed = await store.run(
        identity.scope, identity.key, identity.fingerprint, action, require_key=require_key
    )
    return answer.to_response(replayed=replayed)
