"""Webhooks for payment events: an outbox written with the change, delivered signed, retried, at least once.

Stripe's design. An event (``{"id": "evt_...", "type": "payment.succeeded", "created": ms, "data": {...}}``) is
inserted into the outbox by :func:`enqueue` on the caller's connection, inside the transaction that made the
change: the event exists exactly when the change was committed, and a crash between the two cannot lose or
invent one. :class:`Webhooks` then POSTs each event to its endpoint, signed with the endpoint's secret
(``TOSPLUS-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``); a 2xx answer is delivery.
Anything else is retried with exponential backoff and jitter (10 s, 30 s, 1.5 min ... capped at an hour) until
three days after the event, then the row is ``failed``. Attempts, the next attempt's time and the last answer
are in the row, so retries survive a restart of the hub.

Delivery is at least once (a hub that stops after the POST but before recording it sends again), so merchants
dedupe by event id. Order per endpoint is not guaranteed (a retried event arrives after newer ones), but an
endpoint never has more than one request in flight, and the hub has at most ``concurrency`` overall.

Several hub processes may share the outbox: a dispatcher claims rows by setting ``lease_until``, and nobody
takes a row, or sends to its endpoint, while a lease on it runs. On PostgreSQL claims are serialised by an
advisory lock (claims are short), which makes "one in flight per endpoint" hold across processes too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.core.ids import new_id, now_ms
from tosplus.errors import InvalidInput, NotFound
from tosplus.services.payments.tables_webhooks import EVENT_TYPE_MAX, URL_MAX, webhook_endpoints, webhook_outbox
from tosplus.services.payments.webhook_delivery import (
    DEFAULT_TOLERANCE_S,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Dispatcher,
    signature_header,
    verify_signature,
    wake_after_commit,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "Endpoint",
    "Webhooks",
    "enqueue",
    "enqueue_for_owner",
    "new_event",
    "signature_header",
    "verify_signature",
]

_EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # it travels in a header
_EVENT_KEYS = frozenset({"id", "type", "created", "data"})

e, o = webhook_endpoints, webhook_outbox


def new_event(type: str, data: Mapping[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """An event with a fresh id: build it once and enqueue it for every endpoint, so all share the id."""
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "type": type,
        "created": now_ms() if created is None else created,
        "data": dict(data),
    }


def _event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """The outbox columns of ``event`` (id and created filled in when missing); ValueError for a bad shape,
    because a malformed event is a bug of the caller, found best before its transaction commits."""
    unknown = set(event) - _EVENT_KEYS
    if unknown:
        raise ValueError(f"unknown event fields: {sorted(unknown)}")
    kind = event.get("type")
    if not isinstance(kind, str) or len(kind) > EVENT_TYPE_MAX or not _EVENT_TYPE.fullmatch(kind):
        raise ValueError(f"event type must look like 'payment.succeeded', not {kind!r}")
    event_id = event.get("id")
    event_id = f"evt_{secrets.token_hex(12)}" if event_id is None else event_id
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise ValueError("event id must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
    created = event.get("created")
    created = now_ms() if created is None else created
    if not isinstance(created, int) or isinstance(created, bool):
        raise ValueError("event created must be integer milliseconds")
    data = event.get("data", {})
    if not isinstance(data, Mapping):
        raise ValueError("event data must be an object")
    body = orjson.dumps({"id": event_id, "type": kind, "created": created, "data": data}).decode()
    return {"event_id": event_id, "type": kind, "body": body}


async def _insert(conn: AsyncConnection, which: sa.ColumnElement[bool], event: Mapping[str, Any]) -> str:
    row = _event_row(event)
    moment = now_ms()
    values = {**row, "state": "pending", "attempts": 0, "created_at": moment, "next_attempt_at": moment}
    types = {"attempts": sa.Integer(), "created_at": sa.BigInteger(), "next_attempt_at": sa.BigInteger()}
    # One statement, rows only for enabled endpoints; the primary key makes a repeated enqueue do nothing.
    source = sa.select(e.c.id, *(sa.literal(v, types.get(k, sa.String())) for k, v in values.items()))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(o).from_select(["endpoint_id", *values], source.where(which, e.c.enabled))
    await conn.execute(statement.on_conflict_do_nothing())
    wake_after_commit(conn.sync_connection)
    return str(row["event_id"])


async def enqueue(conn: AsyncConnection, endpoint_id: str, event: Mapping[str, Any]) -> str:
    """Put ``event`` in the outbox for one endpoint, in the caller's transaction on ``conn``; its id.

    Nothing is written for a disabled or unknown endpoint, nor again for an event id already queued for it.
    """
    return await _insert(conn, e.c.id == endpoint_id, event)


async def enqueue_for_owner(conn: AsyncConnection, owner: str, event: Mapping[str, Any]) -> str:
    """Put ``event`` in the outbox for every enabled endpoint of ``owner`` (one statement); its id."""
    return await _insert(conn, e.c.owner == owner, event)


async def enqueue_for_owners(conn: AsyncConnection, events: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
    """``enqueue_for_owner`` for many (owner, event) pairs at once: one query finds the owners with an enabled
    endpoint, and only their events are written (a batch of payments to shops without webhooks writes nothing
    and wakes nobody). How many events were queued."""
    owners = {owner for owner, _ in events}
    if not owners:
        return 0
    listening = set((await conn.execute(sa.select(e.c.owner).where(e.c.owner.in_(owners), e.c.enabled))).scalars())
    queued = 0
    for owner, event in events:
        if owner in listening:
            await _insert(conn, e.c.owner == owner, event)
            queued += 1
    return queued


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as its owner may see it again: everything but the secret, which is shown once."""

    id: str
    owner: str
    url: str
    enabled: bool
    created_at: int


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class Webhooks(Dispatcher):
    """Merchants' endpoints and the outbox's delivery; ``delivery`` options go to :class:`Dispatcher`."""

    def __init__(self, engine: AsyncEngine, *, allow_insecure_urls: bool = False, **delivery: Any) -> None:
        super().__init__(engine, **delivery)
        self.allow_insecure_urls = allow_insecure_urls  # http:// and local addresses: development and tests

    def check_url(self, url: str) -> str:
        """``url`` if the hub may POST to it: https with a host (http and local hosts when insecure URLs are
        allowed). IP literals of private networks are refused so that a merchant cannot aim the hub inward."""
        parts = urlsplit(url)
        if len(url) > URL_MAX or parts.scheme not in ("https", "http") or not parts.hostname:
            raise InvalidInput(f"a webhook URL must be an http(s) URL of at most {URL_MAX} characters")
        if self.allow_insecure_urls:
            return url
        if parts.scheme != "https":
            raise InvalidInput("a webhook URL must use https")
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(parts.hostname).is_global:
                raise InvalidInput("a webhook URL must not point to a private or local address")
        if parts.hostname == "localhost" or parts.hostname.endswith(".localhost"):
            raise InvalidInput("a webhook URL must not point to a private or local address")
        return url

    async def create_endpoint(self, owner: str, url: str) -> tuple[str, str]:
        """A new enabled endpoint of ``owner``: its id and its signing secret, which is never shown again."""
        endpoint_id, secret = new_id("we"), _new_secret()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(e).values(
                    id=endpoint_id,
                    owner=owner,
                    url=self.check_url(url),
                    secret=secret,
                    enabled=True,
                    created_at=now_ms(),
                )
            )
        return endpoint_id, secret

    async def _update_endpoint(self, owner: str, endpoint_id: str, conn: AsyncConnection, **values: Any) -> None:
        done = await conn.execute(sa.update(e).where(e.c.id == endpoint_id, e.c.owner == owner).values(**values))
        if done.rowcount != 1:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")

    async def rotate_secret(self, owner: str, endpoint_id: str, *, overlap_s: int = 0) -> str:
        """A new secret (shown once). With ``overlap_s`` the old one also signs for that long, so the merchant
        can deploy the new one without refusing events meanwhile; without, the old one stops at once (a leak)."""
        secret = _new_secret()
        overlap = overlap_s > 0
        async with self.engine.begin() as conn:
            await self._update_endpoint(
                owner,
                endpoint_id,
                conn,
                secret=secret,
                # The right-hand side reads the row as it was: the old secret.
                previous_secret=e.c.secret if overlap else None,
                previous_until=now_ms() + overlap_s * 1000 if overlap else None,
            )
        return secret

    async def disable(self, owner: str, endpoint_id: str) -> None:
        """Stop sending to the endpoint: new events are not queued for it and queued ones are ``canceled``.
        An attempt already in flight may still arrive."""
        async with self.engine.begin() as conn:
            await self._update_endpoint(owner, endpoint_id, conn, enabled=False)
            await conn.execute(
                sa.update(o)
                .where(o.c.endpoint_id == endpoint_id, o.c.state == "pending")
                .values(state="canceled", lease_until=None, lease_id=None, last_error="endpoint disabled")
            )

    async def enable(self, owner: str, endpoint_id: str) -> None:
        """Send to the endpoint again, from the next event on (those canceled while disabled stay so)."""
        async with self.engine.begin() as conn:
            await self._update_endpoint(owner, endpoint_id, conn, enabled=True)

    async def endpoints(self, owner: str) -> list[Endpoint]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(e.c.id, e.c.owner, e.c.url, e.c.enabled, e.c.created_at)
                .where(e.c.owner == owner)
                .order_by(e.c.created_at, e.c.id)
            )
            return [Endpoint(*row) for row in rows]

    async def enqueue_now(self, endpoint_id: str, event: Mapping[str, Any]) -> str:
        """:func:`enqueue` in a transaction of its own, for callers that have none."""
        async with self.engine.begin() as conn:
            event_id = await enqueue(conn, endpoint_id, event)
        self.notify()
        return event_id

    async def prune(self, older_than_s: float = 30 * 86400, *, batch: int = 5000) -> int:
        """Delete delivered, failed and canceled rows whose last attempt is older than ``older_than_s``, in
        transactions of ``batch`` rows so that other writers get their turns; how many went."""
        cutoff = now_ms() - int(older_than_s * 1000)
        finished = sa.and_(o.c.state.in_(["delivered", "failed", "canceled"]), o.c.next_attempt_at < cutoff)
        total = 0
        while True:
            async with self.engine.begin() as conn:
                keys = (await conn.execute(sa.select(o.c.endpoint_id, o.c.event_id).where(finished).limit(batch))).all()
                if keys:
                    pks = sa.tuple_(o.c.endpoint_id, o.c.event_id).in_([tuple(k) for k in keys])
                    total += max((await conn.execute(sa.delete(o).where(finished, pks))).rowcount or 0, 0)
            if len(keys) < batch:
                return total

    # the dispatcher
