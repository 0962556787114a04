"""Merchants' withdrawals: money from a merchant's account to its bank (the simulated bank, ``payouts:bank``).

A withdrawal is one ledger transfer ``payout:<withdrawal id>`` (code 5) from ``merchant:<id>`` to
``payouts:bank``, with the withdrawal's id as ``user_data``. Its id is derived from the request's
``Idempotency-Key`` and body, so a request repeated after its answer was lost finds its own withdrawal.

Never more than the merchant has: the available balance is checked and the transfer made under the counter's
lock, the lock refunds and reversals (the other debits of a merchant's account) take too, and the ledger has one
writer process, so no two debits can both pass the check on the same money. Payments only add to the balance.

Crash safety, as for refunds (refunds.py): the row is written ``PROCESSING`` before money moves, then the
transfer, then ``SUCCEEDED`` with the ``payout.paid`` event in one transaction. A row a crash left
``PROCESSING`` is settled before the next withdrawal, when withdrawals are listed, and by :meth:`recover` at
start: ``SUCCEEDED`` (and its event queued) if the ledger has its transfer, deleted if not (nothing moved).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tosplus.core.ids import now_ms
from tosplus.errors import Conflict, InvalidInput
from tosplus.sdk.paycode import luhn_ok
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import leftovers, webhooks
from tosplus.services.payments.ledger_types import NewTransfer
from tosplus.services.payments.service import PAYOUT_ACCOUNT, WITHDRAWAL, Merchant
from tosplus.services.payments.tables_withdrawals import withdrawals as tw

if TYPE_CHECKING:
    from tosplus.app import Hub

PROCESSING, SUCCEEDED = "PROCESSING", "SUCCEEDED"
PAYOUT_EVENT = "payout.paid"
MAX_AMOUNT = 2**53


class WithdrawalRefused(Conflict):
    """More than the merchant's available balance. Nothing moved; the idempotency store keeps this answer."""

    title = "Withdrawal refused"


def transfer_id(withdrawal_id: str) -> str:
    return f"payout:{withdrawal_id}"


def masked(bank_account: str) -> str:
    """The bank account number as it is kept and shown: its last four digits."""
    return "****" + bank_account[-4:]


def bank_account_number(text: str) -> str:
    """The account number the simulated bank accepts (a bank card number: 12-19 digits, Luhn); InvalidInput."""
    number = "".join(text.split()).replace("-", "")
    if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_ok(number)):
        raise InvalidInput("bank_account is not a valid bank account number (12 to 19 digits; check the digits)")
    return number


def public(row: Any) -> dict[str, Any]:
    """A withdrawal as its merchant sees it."""
    return {
        "object": "payout",
        "id": row["id"],
        "merchant_id": row["merchant_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "bank_account": row["bank_account"],
        "state": row["state"],
        "transfer_id": transfer_id(row["id"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class Withdrawals:
    """Withdrawals of one hub. Holds no state of its own (the lock is the counter's): cheap to build per request."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.payments = hub.payments
        self.engine = hub.payments.engine

    @property
    def _lock(self) -> asyncio.Lock:
        lock: asyncio.Lock = self.hub.counter.lock
        return lock

    async def withdraw(self, merchant: Merchant, amount: int, bank_account: str, withdrawal_id: str) -> dict[str, Any]:
        """Pay ``amount`` of the merchant's available balance out to ``bank_account``. ``withdrawal_id`` names the
        withdrawal: asked again, the same withdrawal is answered and nothing moves twice."""
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
            raise InvalidInput(f"amount must be a whole number of fen (minor units) from 1 to {MAX_AMOUNT}")
        account_number = bank_account_number(bank_account)
        async with self._lock:
            await self._settle()  # what a crash left half done, before the balance is judged
            known = await self._row(withdrawal_id)
            if known is not None:
                if known["merchant_id"] != merchant.id:
                    raise Conflict("this withdrawal id belongs to another merchant")
                return public(known)
            (account,) = await self.payments.ledger.lookup_accounts([merchant.account])
            if amount > account.available:
                raise WithdrawalRefused(
                    f"a withdrawal of {amount} is more than the merchant's available balance ({account.available})"
                )
            moment = now_ms()
            row = {
                "id": withdrawal_id,
                "merchant_id": merchant.id,
                "amount": amount,
                "currency": merchant.currency,
                "bank_account": masked(account_number),
                "state": PROCESSING,
                "created_at": moment,
                "updated_at": moment,
            }
            async with self.engine.begin() as conn:  # written before money moves: a crash leaves a trace
                await conn.execute(sa.insert(tw).values(**row))
            transfer = NewTransfer(
                transfer_id(withdrawal_id),
                merchant.account,
                PAYOUT_ACCOUNT,
                amount,
                merchant.currency,
                WITHDRAWAL,
                user_data=withdrawal_id,
            )
            (result,) = await self.payments.ledger.create_transfers([transfer])
            if result not in r.SUCCEEDED:
                async with self.engine.begin() as conn:  # nothing moved: the withdrawal never happened
                    await conn.execute(sa.delete(tw).where(tw.c.id == withdrawal_id))
                raise Conflict(f"the withdrawal was not recorded by the ledger: {result}")
            return public(await self._succeeded(row))

    async def _succeeded(self, row: dict[str, Any]) -> dict[str, Any]:
        """Mark the withdrawal paid and queue ``payout.paid`` in one transaction (event id ``evt_<id>``, so
        settling it twice queues it once)."""
        done = {**row, "state": SUCCEEDED, "updated_at": now_ms()}
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(tw).where(tw.c.id == row["id"]).values(state=SUCCEEDED, updated_at=done["updated_at"])
            )
            event = webhooks.new_event(PAYOUT_EVENT, public(done))
            await webhooks.enqueue_for_owner(conn, row["merchant_id"], {**event, "id": f"evt_{row['id']}"})
        return done

    async def _settle(self) -> int:
        """Finish withdrawals left PROCESSING: SUCCEEDED if the ledger has the transfer, gone if not. Only
        called under the lock, when no withdrawal is under way, so a PROCESSING row is a leftover."""
        return await leftovers.settle(self.engine, self.payments.ledger, tw, transfer_id, self._succeeded)

    async def recover(self) -> int:
        """Settle every withdrawal a crash left PROCESSING (for the hub's start); how many there were."""
        async with self._lock:
            return await self._settle()

    async def listing(self, merchant: Merchant, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        """The merchant's withdrawals, newest first (``before``: only those created before this time, ms)."""
        query = sa.select(tw).where(tw.c.merchant_id == merchant.id)
        if before is not None:
            query = query.where(tw.c.created_at < before)
        query = query.order_by(tw.c.created_at.desc(), tw.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in await conn.execute(query)]
        if any(row["state"] == PROCESSING for row in rows):
            async with self._lock:
                await self._settle()
            async with self.engine.connect() as conn:
                rows = [dict(row._mapping) for row in await conn.execute(query)]
        return {"items": [public(row) for row in rows]}

    async def _row(self, withdrawal_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(tw).where(tw.c.id == withdrawal_id))).first()
        return dict(row._mapping) if row else None
