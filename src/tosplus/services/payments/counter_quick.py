"""The counter's quick lane: payments that need no confirmation, many to one database transaction.

A payment at the counter, done step by step, costs about ten database transactions (the idempotency key, the
pay code's "used" mark, the order, the ledger, the order's state, the webhook outbox, the audit row, the key's
answer). The quick lane judges what it can in memory (the pay code's HMAC, the token and its limits, the
velocity windows), queues the payment, and a writer takes every payment waiting and writes them all in one
transaction: the idempotency keys with their answers, the used codes, the orders (born ``SUCCESS``), the
ledger's transfers and balances, the outbox rows and the audit rows. Each request is answered when its batch
has committed (group commit), so the cost per payment falls as the load rises.

Only the plain case goes this way: an Idempotency-Key, a valid code whose token is active, an amount within the
token's per-payment limit and at most its ``confirm_above``. Everything else — payments to confirm on the
device, refusals, retries, codes that may be used, orders that may exist — takes the regular path of
:class:`~tosplus.services.payments.counter.Counter`, which handles every case; a payment the writer cannot
accept (its key, code or order number already in the database, the daily limit, the balance) is handed back
untouched to that path, which then gives the stored answer or the refusal with its reason.

Why it is safe: all of a payment's rows, money included, commit together or not at all, so there is no
``PROCESSING`` state to recover; the database's unique keys remain the guarantee (a row another hub process
wrote since the checks makes the whole batch fail, nothing is written, and each payment goes the regular path);
and payments sharing a key, a code or an order number never run at once here (a later one waits for the one in
flight, then goes the regular path, which sees it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tosplus.core.ids import now_ms
from tosplus.services.homes import audit as audit_log
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import tables_intents, webhooks
from tosplus.services.payments import tables_payments as t
from tosplus.services.payments.idempotency import DEFAULT_TTL_S, RequestIdentity, StoredResponse, check_key, done_row
from tosplus.services.payments.service import Merchant, PaymentToken, wallet_account
from tosplus.services.payments.tables_idempotency import idempotency_keys
from tosplus.services.payments.tables_payments import public_order

if TYPE_CHECKING:
    from tosplus.services.payments.counter import Counter

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


def _future() -> asyncio.Future[StoredResponse | None]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Payment:
    identity: RequestIdentity
    merchant: Merchant
    token: PaymentToken
    token_number: int
    candidates: list[tuple[int, int]]  # (step, counter) pairs the code may be, best first
    order: dict[str, Any]
    answer: StoredResponse  # the order as the merchant gets it, stored with the key for retries
    done: asyncio.Future[StoredResponse | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    code: tuple[int, int, int] | None = None  # the (token, step, counter) spent

    @property
    def key(self) -> tuple[str, str]:
        return (self.identity.scope, self.identity.key or "")

    @property
    def trade(self) -> tuple[str, str]:
        return (self.merchant.id, self.order["out_trade_no"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """The quick lane's answer; ``answer`` None: take the regular path (``velocity_counted``: this payment
    already passed, and was counted by, the velocity limits)."""

    answer: StoredResponse | None
    velocity_counted: bool = False


NOT_HERE = Outcome(None)


class QuickLane:
    def __init__(self, counter: Counter, ttl_ms: int = DEFAULT_TTL_S * 1000, max_batch: int = 500) -> None:
        self.counter = counter
        self.payments = counter.payments
        self.engine = counter.engine
        self.ttl_ms = ttl_ms  # how long idempotency answers are kept
        self.max_batch = max_batch
        self.enabled = True
        self._queue: list[_Payment] = []
        self._writer: asyncio.Task[None] | None = None
        # what is in flight, so that two payments sharing one never run at once here
        self._keys: dict[tuple[str, str], _Payment] = {}
        self._trades: dict[tuple[str, str], _Payment] = {}
        self._codes: dict[tuple[int, int, int], _Payment] = {}
        self.batches = 0  # statistics: batches committed and payments in them
        self.paid = 0

    async def pay(
        self,
        merchant: Merchant,
        identity: RequestIdentity,
        auth_code: str,
        amount: int,
        out_trade_no: str,
        description: str | None,
    ) -> Outcome:
        """Pay at once if this payment can go the quick way; otherwise say so (NOT_HERE) without side effects
        except the velocity count, which the outcome reports."""
        if not self.enabled or identity.key is None or not _plain_amount(amount):
            return NOT_HERE
        try:
            check_key(identity.key)
        except Exception:
            return NOT_HERE
        counter = self.counter
        if not counter.trade_no_ok(out_trade_no):
            return NOT_HERE
        matched = counter.verifier.quick_matches(auth_code)
        if matched is None or not matched[1]:
            return NOT_HERE
        token_number, candidates = matched
        token = self.payments.token_by_number(token_number)
        if token is None or token.status != "active" or amount > token.per_payment_limit:
            return NOT_HERE
        if amount > token.confirm_above:
            return NOT_HERE
        key = (identity.scope, identity.key)
        busy = [
            p
            for p in (
                self._keys.get(key),
                self._trades.get((merchant.id, out_trade_no)),
                *(self._codes.get((token_number, step, n)) for step, n in candidates),
            )
            if p is not None
        ]
        if busy:
            # Let the one in flight finish; the regular path then sees what it wrote.
            await asyncio.wait([asyncio.shield(p.done) for p in busy])
            return NOT_HERE
        if counter.risk.velocity_refusal(token.id, token.user_id):
            return NOT_HERE  # the regular path refuses it with the reason (and counts nothing more)
        order = counter.new_order(merchant, token, amount, out_trade_no, description, state="SUCCESS")
        payment = _Payment(
            identity, merchant, token, token_number, candidates, order, StoredResponse.of_json(public_order(order))
        )
        self._keys[key] = payment
        self._trades[payment.trade] = payment
        for step, n in candidates:
            self._codes[(token_number, step, n)] = payment
        self._queue.append(payment)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="counter-quick-lane")
        return Outcome(await asyncio.shield(payment.done), velocity_counted=True)

    async def close(self) -> None:
        """Finish the batch being written (a stopping hub answers what it accepted)."""
        self.enabled = False
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    # -- the writer -------------------------------------------------------------------------------------------

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            accepted: list[_Payment] = []
            try:
                accepted = await self._write(batch)
            except Exception:
                log.exception("a batch of %d counter payments failed; each takes the regular path", len(batch))
                accepted = []
            except asyncio.CancelledError:
                # The hub is going down mid-batch (or a test plays a crash): whether the batch committed is
                # unknown here, so nobody is answered; the database holds all of a payment or none of it.
                for payment in [*batch, *self._queue]:
                    self._forget(payment)
                    payment.done.cancel()
                self._queue.clear()
                raise
            for payment in batch:
                self._forget(payment)
                if not payment.done.done():
                    payment.done.set_result(payment.answer if payment in accepted else None)

    def _forget(self, payment: _Payment) -> None:
        self._keys.pop(payment.key, None)
        self._trades.pop(payment.trade, None)
        for step, n in payment.candidates:
            if self._codes.get((payment.token_number, step, n)) is payment:
                del self._codes[(payment.token_number, step, n)]

    async def _write(self, batch: list[_Payment]) -> list[_Payment]:
        """Write what can be written of ``batch`` in one transaction; the payments written."""
        ledger = self.payments.ledger
        counter = self.counter
        day_start = now_ms() // DAY_MS * DAY_MS  # the daily limit's day, in UTC
        accepted: list[_Payment] = []
        async with ledger.shared_batch() as money:
            # Every account the batch touches is cached before the transaction: with SQLite's one connection, a
            # read inside it would wait for itself.
            await money.load_accounts({a for p in batch for a in (wallet_account(p.token.user_id), p.merchant.account)})
            async with self.engine.begin() as conn:
                taken = await _taken(conn, batch, day_start)
                spent = taken.spent
                for payment in batch:
                    if payment.key in taken.keys or payment.trade in taken.trades:
                        continue
                    code = next(
                        (
                            (payment.token_number, step, n)
                            for step, n in payment.candidates
                            if (payment.token_number, step, n) not in taken.codes
                        ),
                        None,
                    )
                    amount = payment.order["amount"]
                    total = spent.get(payment.token.id, 0) + amount
                    if code is None or total > payment.token.daily_limit:
                        continue
                    results = await money.apply(counter.payment_transfers(payment.order, payment.merchant), fresh=True)
                    if not all(res in r.SUCCEEDED for res in results):
                        continue  # the balance, most likely: the regular path says why
                    spent[payment.token.id] = total
                    taken.codes.add(code)
                    payment.code = code
                    accepted.append(payment)
                if not accepted:
                    return []
                await self._insert(conn, accepted)
                await money.write(conn)
            money.committed()
        self.batches += 1
        self.paid += len(accepted)
        return accepted

    async def _insert(self, conn: Any, accepted: list[_Payment]) -> None:
        moment = now_ms()
        people = self.counter.hub.people
        await conn.execute(
            sa.insert(t.used_pay_codes),
            [
                {"token_number": p.code[0], "step": p.code[1], "counter": p.code[2], "used_at": moment}
                for p in accepted
                if p.code is not None
            ],
        )
        await conn.execute(sa.insert(t.orders), [p.order for p in accepted])
        await conn.execute(
            sa.insert(idempotency_keys), [done_row(p.identity, p.answer, moment, self.ttl_ms) for p in accepted]
        )
        await conn.execute(
            audit_log.INSERT,
            [
                audit_log.audit_row(
                    None,
                    "payment.succeeded",
                    home_id=people.homes.device_home.get(p.token.device_id),
                    device_id=p.token.device_id,
                    detail={"order_id": p.order["id"], "amount": p.order["amount"], "reason": None},
                    actor_label="payment counter",
                )
                for p in accepted
            ],
        )
        await webhooks.enqueue_for_owners(
            conn,
            [(p.merchant.id, webhooks.new_event("payment.succeeded", public_order(p.order))) for p in accepted],
        )


@dataclass(slots=True)
class _Taken:
    keys: set[tuple[str, str]]
    trades: set[tuple[str, str]]
    codes: set[tuple[int, int, int]]
    spent: dict[str, int]  # token id -> spent today


async def _taken(conn: Any, batch: list[_Payment], day_start: int) -> _Taken:
    """Which of the batch's idempotency keys, order numbers and pay codes the database already has, and what
    each token spent today: one statement (each one is a round trip and a turn of the busy event loop)."""
    k, o, u = idempotency_keys.c, t.orders.c, t.used_pay_codes.c
    text, number = sa.String(), sa.BigInteger()

    def row(kind: str, a: Any, b: Any, c: Any) -> list[Any]:
        return [sa.literal(kind, text).label("kind"), sa.cast(a, text), sa.cast(b, text), sa.cast(c, number)]

    candidates = [(p.token_number, step, n) for p in batch for step, n in p.candidates]
    keys = sa.select(*row("key", k.scope, k.key, None)).where(sa.tuple_(k.scope, k.key).in_([p.key for p in batch]))
    trades = sa.select(*row("trade", o.merchant_id, o.out_trade_no, None)).where(
        sa.tuple_(o.merchant_id, o.out_trade_no).in_([p.trade for p in batch])
    )
    codes = sa.select(*row("code", u.token_number, u.step, u.counter)).where(
        sa.tuple_(u.token_number, u.step, u.counter).in_(candidates)
    )
    spending = [
        sa.select(*row("spent", q.c.token_id, None, q.c.amount))
        for q in (
            query.subquery()
            for query in tables_intents.spending_queries(sorted({p.token.id for p in batch}), day_start)
        )
    ]
    taken = _Taken(set(), set(), set(), {})
    for kind, a, b, c in await conn.execute(sa.union_all(keys, trades, codes, *spending)):
        if kind == "key":
            taken.keys.add((a, b))
        elif kind == "trade":
            taken.trades.add((a, b))
        elif kind == "code":
            taken.codes.add((int(a), int(b), int(c)))
        else:
            taken.spent[a] = taken.spent.get(a, 0) + int(c or 0)
    return taken


def _plain_amount(amount: Any) -> bool:
    return isinstance(amount, int) and not isinstance(amount, bool) and 1 <= amount <= 2**53
