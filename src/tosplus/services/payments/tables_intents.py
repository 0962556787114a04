"""The ``payment_intents`` table, the queries other payment code shares on it, and its rows as each party sees
them (the merchant never sees whose wallet pays; the person never sees the merchant's metadata).

The row is the intent's state; the money is only ever in the ledger, under transfer ids derived from the
intent's id (``pay:<id>``, ``fee:<id>``), which is what lets a crash between the two be resolved at start.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, BigInteger, Column, Index, String, Table, Text
from sqlalchemy.ext.asyncio import AsyncConnection

from tosplus.errors import InvalidInput
from tosplus.services.payments import tables_payments as tp
from tosplus.storage.tables import metadata

REQUIRES_CONFIRMATION, PROCESSING, SUCCEEDED, CANCELED = "requires_confirmation", "processing", "succeeded", "canceled"
STATUSES = (REQUIRES_CONFIRMATION, PROCESSING, SUCCEEDED, CANCELED)

payment_intents = Table(
    "payment_intents",
    metadata,
    Column("id", String(40), primary_key=True),  # pi_ + 24 hex
    Column("merchant_id", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units (fen)
    Column("currency", String(8), nullable=False),
    Column("description", String(200), nullable=True),
    Column("metadata", JSON, nullable=True),  # the merchant's own keys and values, shown to the merchant only
    Column("device_id", String(64), nullable=False),
    Column("token_id", String(32), nullable=False),  # the payment token it pays from, fixed at creation
    Column("user_id", String(32), nullable=False),  # whose wallet pays (never shown to the merchant)
    Column("created_by", String(16), nullable=False),  # merchant | device
    Column("status", String(24), nullable=False),  # one of STATUSES
    Column("cancellation_reason", String(32), nullable=True),
    Column("last_error_code", String(32), nullable=True),  # why the last confirmation could not pay
    Column("last_error", Text, nullable=True),
    Column("fee", BigInteger, nullable=False),  # the platform's share, fixed at creation
    Column("command_id", String(64), nullable=True),  # the confirm_payment command asked of the device
    # A device-signed creation's signature: unique, so a captured request cannot create a second intent even
    # after the hub restarted and forgot the signatures it had seen.
    Column("request_signature", String(64), nullable=True, unique=True),
    Column("confirmed_via", String(16), nullable=True),  # device | console
    Column("confirmed_at", BigInteger, nullable=True),  # when the money moved (counts for the daily limit)
    Column("expires_at", BigInteger, nullable=False),  # canceled as expired if not confirmed by then
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_payment_intents_user_status", "user_id", "status"),
    Index("ix_payment_intents_status_expires", "status", "expires_at"),
    Index("ix_payment_intents_token_confirmed", "token_id", "confirmed_at"),
    Index("ix_payment_intents_device_status", "device_id", "status"),
)
pi = payment_intents
_COUNTER_SPENDING = ("SUCCESS", "USERPAYING", "PROCESSING")  # counter orders that count against the daily limit
_HIDDEN = frozenset({"user_id", "token_id", "command_id", "request_signature", "last_error_code", "last_error"})


async def spent_today(conn: AsyncConnection, token_id: str, day_start: int) -> int:
    """What the token has spent since ``day_start``: counter orders (by creation, as the counter counts) and
    payment intents (by when the money moved). One function, so both ways of paying share one daily limit."""
    return (await spent_today_by_token(conn, [token_id], day_start)).get(token_id, 0)


async def spent_today_by_token(conn: AsyncConnection, token_ids: list[str], day_start: int) -> dict[str, int]:
    """:func:`spent_today` of several tokens in one statement (tokens that spent nothing are left out)."""
    spent: dict[str, int] = {}
    for token_id, amount in await conn.execute(sa.union_all(*spending_queries(token_ids, day_start))):
        spent[token_id] = spent.get(token_id, 0) + int(amount or 0)
    return spent


def spending_queries(token_ids: list[str], day_start: int) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """(token id, amount spent since ``day_start``) rows: one query for counter orders, one for intents."""
    o = tp.orders.c
    counter = (
        sa.select(o.token_id, sa.func.sum(o.amount).label("amount"))
        .where(o.token_id.in_(token_ids), o.created_at >= day_start, o.state.in_(_COUNTER_SPENDING))
        .group_by(o.token_id)
    )
    intents = (
        sa.select(pi.c.token_id, sa.func.sum(pi.c.amount).label("amount"))
        .where(pi.c.token_id.in_(token_ids), pi.c.confirmed_at >= day_start, pi.c.status.in_([PROCESSING, SUCCEEDED]))
        .group_by(pi.c.token_id)
    )
    return counter, intents


async def read(conn: AsyncConnection, intent_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(pi).where(pi.c.id == intent_id))).first()
    return plain(row._mapping) if row else None


async def for_person(conn: AsyncConnection, user_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The person's intents, newest first (the console shows those waiting for their confirmation)."""
    query = sa.select(pi).where(pi.c.user_id == user_id).order_by(pi.c.created_at.desc(), pi.c.id).limit(limit)
    if status is not None:
        query = query.where(pi.c.status == status)
    return [plain(row._mapping) for row in await conn.execute(query)]


def plain(row: Any) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}  # plain str keys: orjson refuses SQLAlchemy's quoted names


def check_metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    """Stripe's shape, smaller: up to 20 string keys of 1-40 characters, string values of at most 500."""
    if value is None:
        return None
    if len(value) > 20 or not all(
        isinstance(k, str) and 1 <= len(k) <= 40 and isinstance(v, str) and len(v) <= 500 for k, v in value.items()
    ):
        raise InvalidInput("metadata holds up to 20 keys of 1-40 characters with string values of at most 500")
    return dict(value)


def _last_error(intent: dict[str, Any]) -> dict[str, str] | None:
    code = intent.get("last_error_code")
    return {"code": code, "message": intent.get("last_error") or ""} if code else None


def merchant_view(intent: dict[str, Any]) -> dict[str, Any]:
    """What the merchant (and the device) sees, in the API and in webhook events: never whose wallet pays."""
    shown = {k: v for k, v in intent.items() if k not in _HIDDEN}
    return {"object": "payment_intent", **shown, "last_payment_error": _last_error(intent)}


def person_view(intent: dict[str, Any], merchant_name: str | None) -> dict[str, Any]:
    """What the wallet's owner sees: who asks, how much, from which device; not the merchant's metadata."""
    keys = ("id", "amount", "currency", "status", "description", "device_id", "created_by", "cancellation_reason")
    times = ("confirmed_via", "confirmed_at", "expires_at", "created_at", "updated_at")
    return {
        "object": "payment_intent",
        **{k: intent[k] for k in keys + times},
        "merchant": {"id": intent["merchant_id"], "name": merchant_name},
        "last_payment_error": _last_error(intent),
    }
