"""Daily settlement statements of a merchant: every posted ledger movement of its account in one UTC day.

A statement is read from the ledger's own tables, never from orders or refunds, so it says what the money did:

- the opening balance is the signed sum of the account's posted transfers created before the day began;
- the movements are those created during the day, each with its kind (from the transfer's code and direction)
  and the balance after it; pending reservations move no posted money and are not listed, their posting is;
- the closing balance is the opening plus the movements, which is the account's balance as of the end of the
  day by construction.

Everything is read in one snapshot (PostgreSQL: a REPEATABLE READ transaction; SQLite: the hub's single
connection, which no writer can use meanwhile), and the statement is checked against the ledger before it is
given out: closing plus every movement after the day must equal the account's posted balance as stored. A
statement that does not reconcile is an error, never an answer.

Withdrawals to the merchant's bank are movements like any other (kind ``withdrawal``, with the withdrawal's
id), so opening + payments - fees - refunds - withdrawals (+ fees given back - reversals) = closing.

A day's statement is ``final`` once the day is over: the ledger stamps transfers with its clock as it writes
them, in order, so nothing new lands in a past day.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.errors import InvalidInput
from tosplus.services.payments.ledger_types import TransferFlags
from tosplus.services.payments.service import PAYMENT, PLATFORM_FEE, REFUND, WITHDRAWAL, Merchant
from tosplus.services.payments.tables_ledger import ledger_accounts, ledger_transfers
from tosplus.services.payments.tables_payments import orders
from tosplus.services.payments.tables_refunds import refunds

DAY_MS = 86_400_000
# (transfer code, money comes in) -> kind; anything else is "other"
_KINDS: Mapping[tuple[int, bool], str] = {
    (PAYMENT, True): "payment",
    (PLATFORM_FEE, False): "fee",
    (REFUND, False): "refund",
    (PLATFORM_FEE, True): "fee_refund",  # a refund's share of the fee, or the whole fee of a reversed order
    (PAYMENT, False): "reversal",  # a paid order reversed at the counter
    (WITHDRAWAL, False): "withdrawal",  # paid out to the merchant's bank
}
KINDS = ("payment", "fee", "refund", "fee_refund", "reversal", "withdrawal", "other")
CSV_COLUMNS = (
    "record",
    "kind",
    "transfer_id",
    "created_at",
    "amount",
    "balance_after",
    "out_trade_no",
    "out_refund_no",
    "order_id",
    "withdrawal_id",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NOT_POSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


class StatementMismatch(RuntimeError):
    """The statement does not agree with the ledger's stored balance: a bug, never served as an answer."""


@dataclass(frozen=True, slots=True)
class Movement:
    transfer_id: str
    created_at: int
    kind: str
    amount: int  # signed: + into the merchant's account, - out of it
    balance_after: int
    order_id: str | None
    out_trade_no: str | None
    out_refund_no: str | None
    withdrawal_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "created_at": self.created_at,
            "kind": self.kind,
            "amount": self.amount,
            "balance_after": self.balance_after,
            "order_id": self.order_id,
            "out_trade_no": self.out_trade_no,
            "out_refund_no": self.out_refund_no,
            "withdrawal_id": self.withdrawal_id,
        }


@dataclass(slots=True)
class Statement:
    merchant_id: str
    account: str
    currency: str
    day: date
    start: int  # ms, inclusive
    end: int  # ms, exclusive
    final: bool
    opening_balance: int
    closing_balance: int = 0
    movements: list[Movement] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per kind, how many movements and their signed sum (every kind is present, zero when none)."""
        totals = {kind: {"count": 0, "amount": 0} for kind in KINDS}
        for m in self.movements:
            totals[m.kind]["count"] += 1
            totals[m.kind]["amount"] += m.amount
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "account": self.account,
            "currency": self.currency,
            "date": self.day.isoformat(),
            "start": self.start,
            "end": self.end,
            "final": self.final,
            "opening_balance": self.opening_balance,
            "closing_balance": self.closing_balance,
            "totals": self.totals(),
            "movements": [m.to_json() for m in self.movements],
        }

    def to_csv(self) -> str:
        """One table with a header row: an ``opening`` row, the ``movement`` rows, a ``total`` row per kind and
        a ``closing`` row. Amounts are signed integers in minor units; opening + the movements = closing."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerow(
            ("opening", "", "", _iso(self.start), self.opening_balance, self.opening_balance, "", "", "", "")
        )
        for m in self.movements:
            writer.writerow(
                (
                    "movement",
                    m.kind,
                    m.transfer_id,
                    _iso(m.created_at),
                    m.amount,
                    m.balance_after,
                    m.out_trade_no or "",
                    m.out_refund_no or "",
                    m.order_id or "",
                    m.withdrawal_id or "",
                )
            )
        for kind, total in self.totals().items():
            writer.writerow(("total", kind, "", "", total["amount"], "", "", "", "", ""))
        writer.writerow(("closing", "", "", _iso(self.end), self.closing_balance, self.closing_balance, "", "", "", ""))
        return out.getvalue()


def parse_day(text: str, now: int | None = None) -> date:
    """A ``YYYY-MM-DD`` day that has begun (UTC); InvalidInput otherwise."""
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("the date must be a day as YYYY-MM-DD (UTC)") from None
    if _day_start(day) > (now_ms() if now is None else now):
        raise InvalidInput(f"{text} has not begun yet (days are UTC)")
    return day


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def statement(engine: AsyncEngine, merchant: Merchant, day: date, now: int | None = None) -> Statement:
    """The merchant's statement of ``day`` (UTC), checked against the ledger."""
    start = _day_start(day)
    end = start + DAY_MS
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            return await _read(conn, merchant, day, start, end, now_ms() if now is None else now)


async def _read(conn: AsyncConnection, merchant: Merchant, day: date, start: int, end: int, now: int) -> Statement:
    t, account = ledger_transfers, merchant.account
    mine = sa.and_(
        sa.or_(t.c.debit_account_id == account, t.c.credit_account_id == account),
        t.c.flags.op("&")(_NOT_POSTED) == 0,
    )
    signed = sa.case((t.c.credit_account_id == account, t.c.amount), else_=-t.c.amount)
    bucket = sa.case((t.c.created_at < start, 0), (t.c.created_at < end, 1), else_=2)
    sums = {0: 0, 1: 0, 2: 0}
    for which, total in await conn.execute(sa.select(bucket, sa.func.sum(signed)).where(mine).group_by(bucket)):
        sums[int(which)] = int(total or 0)
    stored = (
        await conn.execute(
            sa.select(ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted).where(
                ledger_accounts.c.id == account
            )
        )
    ).scalar()
    rows = (
        await conn.execute(
            sa.select(t.c.id, t.c.credit_account_id, t.c.amount, t.c.code, t.c.user_data, t.c.created_at)
            .where(mine, t.c.created_at >= start, t.c.created_at < end)
            # One batch's transfers share a time: money in before money out, so no balance dips on the way.
            .order_by(t.c.created_at, sa.case((t.c.credit_account_id == account, 0), else_=1), t.c.id)
        )
    ).all()
    order_ids = sorted({row.user_data for row in rows if row.user_data})
    trade_nos = await _lookup(conn, orders.c.id, orders.c.out_trade_no, order_ids, orders.c.merchant_id, merchant.id)
    refund_ids = sorted({row.id.split(":", 1)[1] for row in rows if row.id.startswith(("refund:", "refee:"))})
    refund_nos = await _lookup(
        conn, refunds.c.id, refunds.c.out_refund_no, refund_ids, refunds.c.merchant_id, merchant.id
    )
    result = Statement(merchant.id, account, merchant.currency, day, start, end, end <= now, sums[0])
    balance = sums[0]
    for row in rows:
        incoming = row.credit_account_id == account
        amount = int(row.amount) if incoming else -int(row.amount)
        balance += amount
        refund_id = row.id.split(":", 1)[1] if row.id.startswith(("refund:", "refee:")) else None
        kind = _KINDS.get((row.code, incoming), "other")
        withdrawal = kind == "withdrawal"
        result.movements.append(
            Movement(
                row.id,
                int(row.created_at),
                kind,
                amount,
                balance,
                None if withdrawal else row.user_data,
                None if withdrawal else trade_nos.get(row.user_data or ""),
                refund_nos.get(refund_id or ""),
                row.user_data if withdrawal else None,
            )
        )
    result.closing_balance = balance
    if balance != sums[0] + sums[1] or balance + sums[2] != int(stored or 0):
        raise StatementMismatch(
            f"statement of {account} for {day}: opening {sums[0]} + movements {balance - sums[0]} "
            f"+ later {sums[2]} does not equal the ledger's balance {int(stored or 0)}"
        )
    return result


async def _lookup(
    conn: AsyncConnection,
    key: sa.Column[Any],
    value: sa.Column[Any],
    ids: list[str],
    owner: sa.Column[Any],
    owner_id: str,
) -> dict[str, str]:
    """``key -> value`` for the ids that belong to the merchant (in chunks: a busy day names many orders)."""
    found: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for k, v in await conn.execute(sa.select(key, value).where(key.in_(chunk), owner == owner_id)):
            found[str(k)] = str(v)
    return found
