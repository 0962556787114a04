"""Refunds of paid counter orders: partial or full, never more than was paid, with the fee given back in step.

A refund is two linked ledger transfers (both or neither): ``refee:<refund id>`` gives the platform's fee back
to the merchant in proportion, and ``refund:<refund id>`` pays the amount from the merchant to the wallet that
paid. Both carry the order id as ``user_data``.

Why refunds cannot exceed what was paid, even when two arrive at once: every refund runs under the counter's
lock (the one order states change under, so a refund cannot race a reversal of the same order either), and
inside it the amount already refunded is summed from the ledger's own transfers, not from a counter kept
beside them. The ledger has a single writer process (see ledger.py), so a lock in that process serialises every
refund there is; the check and the transfers it allows cannot be interleaved with another refund's.

Rounding of the fee refund: after refunds totalling R of an order of amount A that paid fee F, the merchant has
had ``F * R // A`` back (floor). Each refund gives back the difference, so partial refunds never return more
fee than was charged, the platform keeps less than one fen while the order is partly refunded, and a full
refund returns exactly F: the merchant ends where it started.

Negative balances: a refund the merchant's available balance cannot cover (amount less fee refund) is refused.
The platform never lends a merchant money to refund with (Stripe does, then collects; we have nothing to collect
with). Payments only add to that balance and reversals run under the same lock, so the check holds for them;
debits made elsewhere (withdrawals) must take the same lock, or the account must get the
``DEBITS_MUST_NOT_EXCEED_CREDITS`` flag, for it to hold against them too.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tosplus.core.ids import new_id, now_ms
from tosplus.errors import Conflict, InvalidInput, NotFound
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import leftovers, webhooks
from tosplus.services.payments import tables_payments as tp
from tosplus.services.payments.ledger_types import NewTransfer, TransferFlags
from tosplus.services.payments.service import FEE_ACCOUNT, PLATFORM_FEE, REFUND, Merchant, wallet_account
from tosplus.services.payments.tables_ledger import ledger_transfers
from tosplus.services.payments.tables_refunds import refunds as tr

if TYPE_CHECKING:
    from tosplus.app import Hub

PROCESSING, SUCCEEDED = "PROCESSING", "SUCCEEDED"
PAID = "SUCCESS"  # the only order state that can be refunded (an order stays SUCCESS when refunded in full)
REFUND_EVENT = "refund.succeeded"
REASON_MAX = 200
MAX_AMOUNT = 2**53
_REFUND_NO = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_NOT_POSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


class RefundRefused(Conflict):
    """The refund is not possible as asked (more than is left, an unpaid order, a balance that cannot cover it).
    Nothing moved; the idempotency store keeps this answer for the request's key."""

    title = "Refund refused"


def fee_returned(fee: int, amount: int, refunded: int) -> int:
    """The part of the order's ``fee`` the merchant has back once ``refunded`` of ``amount`` was refunded."""
    return fee * refunded // amount if amount else 0


def _first_transfer(refund_id: str) -> str:
    return transfer_ids(refund_id)[0]


def transfer_ids(refund_id: str) -> tuple[str, str]:
    """The ledger ids of a refund's two transfers: the money back to the wallet, the fee back to the merchant."""
    return f"refund:{refund_id}", f"refee:{refund_id}"


def public(row: Any) -> dict[str, Any]:
    """A refund as its merchant sees it (the same answer every time it is asked for, once it succeeded)."""
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "out_trade_no": row["out_trade_no"],
        "out_refund_no": row["out_refund_no"],
        "amount": row["amount"],
        "fee_refund": row["fee_refund"],
        "currency": row["currency"],
        "reason": row["reason"],
        "state": row["state"],
        "created_at": row["created_at"],
    }


class Refunds:
    """Refunds of one hub. Holds no state of its own (the lock is the counter's), so it is cheap to build per
    request."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.payments = hub.payments
        self.engine = hub.payments.engine

    @property
    def _lock(self) -> asyncio.Lock:
        # The counter changes order states (confirmation, reversal) under this lock; sharing it means a refund
        # sees an order's state as it is while its money moves.
        lock: asyncio.Lock = self.hub.counter.lock
        return lock

    # -- refunding --------------------------------------------------------------------------------------------

    async def refund(
        self, merchant: Merchant, out_trade_no: str, amount: int, out_refund_no: str, reason: str | None
    ) -> dict[str, Any]:
        """Refund ``amount`` of a paid order. The same ``out_refund_no`` with the same order and amount answers
        the refund made the first time; with anything else it is refused."""
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
            raise InvalidInput(f"amount must be a whole number of fen (minor units) from 1 to {MAX_AMOUNT}")
        if not _REFUND_NO.match(out_refund_no):
            raise InvalidInput("out_refund_no must be 1-64 letters, digits or _ . : -")
        if reason is not None and len(reason) > REASON_MAX:
            raise InvalidInput(f"reason must be at most {REASON_MAX} characters")
        async with self._lock:
            order = await self._order(merchant, out_trade_no)
            await self._settle(order_id=order["id"])  # what a crash left half done, before anything is counted
            known = await self._by_refund_no(merchant.id, out_refund_no)
            if known is not None:
                if known["order_id"] != order["id"] or known["amount"] != amount:
                    raise Conflict(
                        f"out_refund_no {out_refund_no} was already used for a refund of {known['amount']} "
                        f"of order {known['out_trade_no']}"
                    )
                return public(known)  # the same refund asked again: its answer, nothing moves
            return public(await self._new_refund(merchant, order, amount, out_refund_no, reason))

    async def _new_refund(
        self, merchant: Merchant, order: dict[str, Any], amount: int, out_refund_no: str, reason: str | None
    ) -> dict[str, Any]:
        if order["state"] != PAID:
            raise RefundRefused(
                f"order {order['out_trade_no']} is {order['state']}: only a paid (SUCCESS) order can be refunded"
            )
        refunded = await self.refunded(order)
        left = order["amount"] - refunded
        if amount > left:
            raise RefundRefused(
                f"a refund of {amount} is more than is left to refund on order {order['out_trade_no']}: "
                f"{left} of {order['amount']} ({refunded} already refunded)"
            )
        fee_back = fee_returned(order["fee"], order["amount"], refunded + amount) - fee_returned(
            order["fee"], order["amount"], refunded
        )
        (account,) = await self.payments.ledger.lookup_accounts([merchant.account])
        if account.available < amount - fee_back:
            raise RefundRefused(
                f"the merchant's available balance ({account.available}) does not cover the refund "
                f"({amount - fee_back} after the fee given back)"
            )
        moment = now_ms()
        row = {
            "id": new_id("rfd"),
            "merchant_id": merchant.id,
            "order_id": order["id"],
            "out_trade_no": order["out_trade_no"],
            "out_refund_no": out_refund_no,
            "amount": amount,
            "fee_refund": fee_back,
            "currency": order["currency"],
            "reason": reason,
            "state": PROCESSING,
            "created_at": moment,
            "updated_at": moment,
        }
        async with self.engine.begin() as conn:  # written before money moves: a crash leaves a trace to settle
            await conn.execute(sa.insert(tr).values(**row))
        results = await self.payments.ledger.create_transfers(self._transfers(row, order, merchant))
        if not all(res in r.SUCCEEDED for res in results):
            async with self.engine.begin() as conn:  # nothing moved: the refund never happened
                await conn.execute(sa.delete(tr).where(tr.c.id == row["id"]))
            raise Conflict(f"the refund was not recorded by the ledger: {results}")
        return await self._succeeded(row)

    def _transfers(self, row: dict[str, Any], order: dict[str, Any], merchant: Merchant) -> list[NewTransfer]:
        refund_id, fee_id = transfer_ids(row["id"])
        back = NewTransfer(
            refund_id,
            merchant.account,
            wallet_account(order["user_id"]),
            row["amount"],
            row["currency"],
            REFUND,
            user_data=order["id"],
        )
        if not row["fee_refund"]:
            return [back]
        fee = NewTransfer(
            fee_id,
            FEE_ACCOUNT,
            merchant.account,
            row["fee_refund"],
            row["currency"],
            PLATFORM_FEE,
            int(TransferFlags.LINKED),
            user_data=order["id"],
        )
        return [fee, back]  # the fee first: the merchant is credited before it is debited

    async def _succeeded(self, row: dict[str, Any]) -> dict[str, Any]:
        """Mark the refund done and queue its event in one transaction; the event's id is the refund's, so
        settling a refund twice queues it once."""
        done = {**row, "state": SUCCEEDED, "updated_at": now_ms()}
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(tr).where(tr.c.id == row["id"]).values(state=SUCCEEDED, updated_at=done["updated_at"])
            )
            event = webhooks.new_event(REFUND_EVENT, public(done))
            await webhooks.enqueue_for_owner(conn, row["merchant_id"], {**event, "id": f"evt_{row['id']}"})
        return done

    async def _settle(self, *, order_id: str | None = None) -> int:
        """Finish refunds left PROCESSING (a crash between the row and the ledger, or after): SUCCEEDED if the
        ledger has the transfer, gone if not (nothing moved). Only called under the lock, when no refund is
        under way, so a PROCESSING row is a leftover and never one in flight."""
        where = [] if order_id is None else [tr.c.order_id == order_id]
        return await leftovers.settle(self.engine, self.payments.ledger, tr, _first_transfer, self._succeeded, *where)

    async def recover(self) -> int:
        """Settle every refund a crash left PROCESSING (for the hub's start); how many there were."""
        async with self._lock:
            return await self._settle()

    # -- reading ----------------------------------------------------------------------------------------------

    async def refunded(self, order: dict[str, Any]) -> int:
        """How much of the order was refunded, summed from the ledger (the truth, not the refunds table).

        Read through the wallet's credits (indexed by account): a wallet has few of them next to a merchant's
        payments."""
        t = ledger_transfers
        merchant_account = self.payments.merchants[order["merchant_id"]].account
        async with self.engine.connect() as conn:
            total = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(t.c.amount), 0)).where(
                        t.c.credit_account_id == wallet_account(order["user_id"]),
                        t.c.debit_account_id == merchant_account,
                        t.c.code == REFUND,
                        t.c.user_data == order["id"],
                        t.c.flags.op("&")(_NOT_POSTED) == 0,
                    )
                )
            ).scalar()
        return int(total or 0)

    async def listing(self, merchant: Merchant, out_trade_no: str) -> dict[str, Any]:
        """The order's refunds, oldest first, with how much was refunded and how much is left."""
        order = await self._order(merchant, out_trade_no)
        rows = await self._rows(order["id"])
        if any(row["state"] == PROCESSING for row in rows):
            async with self._lock:
                await self._settle(order_id=order["id"])
            rows = await self._rows(order["id"])
        refunded = await self.refunded(order) if order["user_id"] else 0
        return {
            "order_id": order["id"],
            "out_trade_no": order["out_trade_no"],
            "state": order["state"],
            "amount": order["amount"],
            "currency": order["currency"],
            "refunded_amount": refunded,
            "refundable_amount": order["amount"] - refunded if order["state"] == PAID else 0,
            "items": [public(row) for row in rows],
        }

    async def _rows(self, order_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(tr).where(tr.c.order_id == order_id).order_by(tr.c.created_at, tr.c.id))
            return [dict(row._mapping) for row in rows]

    async def _order(self, merchant: Merchant, out_trade_no: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(tp.orders).where(
                        tp.orders.c.merchant_id == merchant.id, tp.orders.c.out_trade_no == out_trade_no
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no order {out_trade_no}")
        return {str(k): v for k, v in row._mapping.items()}

    async def _by_refund_no(self, merchant_id: str, out_refund_no: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(tr).where(tr.c.merchant_id == merchant_id, tr.c.out_refund_no == out_refund_no)
                )
            ).first()
        return dict(row._mapping) if row else None
