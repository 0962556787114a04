"""What the console shows of payments: a person's paying devices, wallet history and current pay code, and a
merchant's orders and refunds for its owner. Read-only queries over the payment service's own tables and the
ledger (docs/payments.md, "Owner views (console)"); money moves elsewhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tosplus.core.ids import now_ms
from tosplus.errors import Conflict
from tosplus.sdk.paycode import BORROW_STEPS, PayCodeGenerator, barcode_svg, code_svg, grouped, time_step
from tosplus.services.payments import counter, refunds, tables_intents
from tosplus.services.payments.ledger import PENDING
from tosplus.services.payments.ledger_types import TransferFlags
from tosplus.services.payments.service import PAYMENT, REFUND, TOP_UP, Merchant, PaymentToken
from tosplus.services.payments.tables_intents import payment_intents
from tosplus.services.payments.tables_ledger import ledger_pending, ledger_transfers
from tosplus.services.payments.tables_payments import orders, used_pay_codes
from tosplus.services.payments.tables_refunds import refunds as refunds_table

if TYPE_CHECKING:
    from tosplus.app import Hub

DAY_MS = 86_400_000
_UNPOSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


def _device_json(hub: Hub, device_id: str | None) -> dict[str, Any] | None:
    """Name, product and home of a device, as its wallet's owner sees them (the device may be gone)."""
    if device_id is None:
        return None
    device = hub.registry.devices.get(device_id)
    home_id = hub.people.homes.device_home.get(device_id)
    home = hub.people.homes.homes.get(home_id) if home_id else None
    product = hub.registry.products.get(device.product_id) if device else None
    return {
        "id": device_id,
        "name": device.name if device else None,
        "product_id": device.product_id if device else None,
        "product_name": product.name if product else None,
        "home_id": home_id,
        "home_name": home.name if home else None,
        "online": hub.presence.is_online(device_id),
    }


# -- a person's devices and pay codes -------------------------------------------------------------------------


async def payment_devices(hub: Hub, user_id: str) -> list[dict[str, Any]]:
    """Every payment token paying from the person's wallet, with its device and what it spent today (UTC),
    counted as the counter and intents count it for the daily limit."""
    tokens = sorted(
        (token for token in hub.payments.tokens.values() if token.user_id == user_id), key=lambda t: t.created_at
    )
    day_start = now_ms() // DAY_MS * DAY_MS
    items = []
    async with hub.payments.engine.connect() as conn:
        for token in tokens:
            spent = await tables_intents.spent_today(conn, token.id, day_start)
            items.append(
                {
                    **token.to_json(),
                    "device": _device_json(hub, token.device_id),
                    "spent_today": spent,
                    "left_today": max(0, token.daily_limit - spent),
                }
            )
    return items


async def pay_code(hub: Hub, token: PaymentToken, now: float | None = None) -> dict[str, Any]:
    """The code a screen on the device would show now: the first (step, counter) of this minute not yet spent
    (the next minute's, when this one's are all used), as the SDK's generator computes it. Only the hub's
    record of spent codes decides, so a code paid with is never shown again."""
    verifier = hub.counter.verifier
    moment = time.time() if now is None else now
    current = time_step(moment, verifier.step_s)
    steps = list(range(current, current + BORROW_STEPS + 1))
    async with hub.payments.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(used_pay_codes.c.step, used_pay_codes.c.counter).where(
                used_pay_codes.c.token_number == token.token_number, used_pay_codes.c.step.in_(steps)
            )
        )
        used = {(int(row.step), int(row.counter)) for row in rows}
    free = [(step, n) for step in steps for n in range(verifier.max_counter) if (step, n) not in used]
    if not free:
        wait = (current + 1) * verifier.step_s - moment
        raise Conflict(f"every pay code of this minute was used; the next one is ready in {math.ceil(wait)} s")
    generator = PayCodeGenerator(
        token.token_number, token.key, step_s=verifier.step_s, max_counter=verifier.max_counter, position=free[0]
    )
    code = generator.current(moment)
    left = max(1, math.ceil(generator.seconds_left(moment)))
    return {
        "device_id": token.device_id,
        "code": code,
        "grouped": grouped(code),
        "qr_svg": code_svg(code),
        "barcode_svg": barcode_svg(code),  # Code 128, for the 1-D scanners many counters still have
        "expires_in_s": left,
        "expires_at": int(moment * 1000) + left * 1000,
    }


# -- a person's wallet history -----------------------------------------------------------------------------------


async def wallet_history(hub: Hub, user_id: str, limit: int, before: int | None) -> dict[str, Any]:
    """The wallet's movements, newest first, each with its kind, the merchant and device it concerns and the
    posted balance after it. Reservations still waiting for the device are listed as ``reserved`` (they move
    no posted money); released reservations and the records that release them are left out (nothing moved),
    and a confirmed one appears as the payment that posted it. A page never splits one millisecond, so
    ``next_before`` (the oldest ``created_at`` shown) continues exactly where it stopped."""
    account = (await hub.payments.wallet(user_id)).id
    t, lp = ledger_transfers, ledger_pending
    mine = sa.or_(t.c.debit_account_id == account, t.c.credit_account_id == account)
    shown = sa.and_(
        t.c.flags.op("&")(int(TransferFlags.VOID_PENDING)) == 0,
        sa.or_(t.c.flags.op("&")(int(TransferFlags.PENDING)) == 0, lp.c.status == PENDING),
    )
    columns = sa.select(t).select_from(t.outerjoin(lp, lp.c.transfer_id == t.c.id)).where(mine, shown)
    async with hub.payments.engine.connect() as conn:
        page = columns.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if before is not None:
            page = page.where(t.c.created_at < before)
        rows = await _whole_milliseconds(conn, list(await conn.execute(page)), limit, columns, t.c.created_at, t.c.id)
        oldest = min((int(row.created_at) for row in rows), default=None)
        posted = sa.and_(mine, t.c.flags.op("&")(_UNPOSTED) == 0)
        signed = sa.case((t.c.credit_account_id == account, t.c.amount), else_=-t.c.amount)
        opening = 0
        if oldest is not None:
            total = await conn.execute(sa.select(sa.func.sum(signed)).where(posted, t.c.created_at < oldest))
            opening = int(total.scalar() or 0)
        found = await _payments_of(conn, sorted({row.user_data for row in rows if row.user_data}))
    # Oldest first to carry the balance; within one moment money in before money out (as statements do).
    ordered = sorted(rows, key=lambda row: (row.created_at, row.credit_account_id != account, row.id))
    balance, items = opening, []
    for row in ordered:
        incoming = row.credit_account_id == account
        reserved = bool(row.flags & TransferFlags.PENDING)
        if not reserved:
            balance += int(row.amount) if incoming else -int(row.amount)
        about = found.get(row.user_data or "", {})
        merchant = hub.payments.merchants.get(about.get("merchant_id", ""))
        items.append(
            {
                "id": row.id,
                "created_at": int(row.created_at),
                "kind": _wallet_kind(int(row.code), incoming),
                "direction": "in" if incoming else "out",
                "amount": int(row.amount),
                "state": "reserved" if reserved else "posted",
                "balance_after": None if reserved else balance,
                "merchant": {"id": merchant.id, "name": merchant.name} if merchant else None,
                "device": _device_json(hub, about.get("device_id")),
                "description": about.get("description"),
                "order_id": row.user_data,
            }
        )
    items.reverse()
    return {
        "items": items,
        "opening_balance": opening,
        "next_before": oldest if len(rows) >= limit else None,
    }


def _wallet_kind(code: int, incoming: bool) -> str:
    if code == TOP_UP:
        return "top_up"
    if code == PAYMENT:
        return "reversal" if incoming else "payment"
    if code == REFUND and incoming:
        return "refund"
    return "other"


async def _payments_of(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Merchant, device and description of counter orders and payment intents, by id."""
    found: dict[str, dict[str, Any]] = {}
    for table in (orders, payment_intents):
        for i in range(0, len(ids), 500):
            query = sa.select(table.c.id, table.c.merchant_id, table.c.device_id, table.c.description)
            for row in await conn.execute(query.where(table.c.id.in_(ids[i : i + 500]))):
                found[str(row.id)] = dict(row._mapping)
    return found


async def _whole_milliseconds(
    conn: AsyncConnection,
    rows: list[Any],
    limit: int,
    query: sa.Select[Any],
    created_at: sa.ColumnElement[Any],
    row_id: sa.ColumnElement[Any],
) -> list[Any]:
    """A full page ends inside its oldest millisecond perhaps: add that millisecond's other rows, so the next
    page (``created_at < oldest``) misses nothing."""
    if len(rows) < limit:
        return rows
    oldest = min(int(row.created_at) for row in rows)
    have = {row.id for row in rows}
    more = await conn.execute(query.where(created_at == oldest).order_by(row_id.desc()))
    return rows + [row for row in more if row.id not in have]


# -- a merchant, for its owner ------------------------------------------------------------------------------------


async def merchant_json(hub: Hub, merchant: Merchant) -> dict[str, Any]:
    """The merchant with its account's balance (what it has been paid, less fees and refunds)."""
    (account,) = await hub.payments.ledger.lookup_accounts([merchant.account])
    return {**merchant.to_json(), "balance": account.balance, "available": account.available}


def merchants_of(hub: Hub, user_id: str | None, *, everyone: bool) -> list[Merchant]:
    found = [m for m in hub.payments.merchants.values() if everyone or (user_id and m.owner_id == user_id)]
    return sorted(found, key=lambda m: (m.created_at, m.id))


async def merchant_orders(hub: Hub, merchant: Merchant, limit: int, before: int | None) -> dict[str, Any]:
    """The merchant's orders, newest first, as the merchant sees them (never who paid), with how much of each
    was refunded (from the ledger, as refunds count it) and how much is left to refund."""
    columns = sa.select(orders).where(orders.c.merchant_id == merchant.id)
    page = columns.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    if before is not None:
        page = page.where(orders.c.created_at < before)
    async with hub.payments.engine.connect() as conn:
        rows = await _whole_milliseconds(
            conn, list(await conn.execute(page)), limit, columns, orders.c.created_at, orders.c.id
        )
        ids = [row.id for row in rows]
        with_refunds = await _orders_with_refunds(conn, ids)
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    counting = refunds.Refunds(hub)
    items = []
    for row in rows:
        order = {str(k): v for k, v in row._mapping.items()}
        refunded = await counting.refunded(order) if row.id in with_refunds and order["user_id"] else 0
        paid = order["state"] == refunds.PAID
        items.append(
            {
                **counter.public(order),
                "refunded_amount": refunded,
                "refundable_amount": order["amount"] - refunded if paid else 0,
            }
        )
    oldest = min((int(row.created_at) for row in rows), default=None)
    return {"items": items, "next_before": oldest if len(rows) >= limit else None}


async def _orders_with_refunds(conn: AsyncConnection, order_ids: Sequence[str]) -> set[str]:
    """Which of the orders have refunds at all: only those need their refunded amount summed from the ledger."""
    found: set[str] = set()
    for i in range(0, len(order_ids), 500):
        query = sa.select(refunds_table.c.order_id).where(refunds_table.c.order_id.in_(order_ids[i : i + 500]))
        found.update(str(row.order_id) for row in await conn.execute(query.distinct()))
    return found


async def merchant_refunds(hub: Hub, merchant: Merchant, limit: int, before: int | None) -> dict[str, Any]:
    """The merchant's refunds, newest first, as the merchant's own API shows each."""
    tr = refunds_table
    columns = sa.select(tr).where(tr.c.merchant_id == merchant.id)
    page = columns.order_by(tr.c.created_at.desc(), tr.c.id.desc()).limit(limit)
    if before is not None:
        page = page.where(tr.c.created_at < before)
    async with hub.payments.engine.connect() as conn:
        rows = await _whole_milliseconds(conn, list(await conn.execute(page)), limit, columns, tr.c.created_at, tr.c.id)
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    oldest = min((int(row.created_at) for row in rows), default=None)
    return {
        "items": [refunds.public(row._mapping) for row in rows],
        "next_before": oldest if len(rows) >= limit else None,
    }
