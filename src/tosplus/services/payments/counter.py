"""Paying at the counter: the cashier scans the pay code shown by a watch or phone and calls micropay.

An order ends SUCCESS, CLOSED (refused, nothing moved) or REVOKED (reversed, or not confirmed in time):

- small payments are authorised at once: the wallet pays the merchant and the merchant the platform's fee, two
  linked transfers that succeed or fail together;
- above the token's ``confirm_above``, the amount is reserved (a pending transfer) and the device is asked to
  confirm (the ``confirm_payment`` command); the merchant gets USERPAYING and queries. The person's answer posts
  or voids the reservation; no answer within 45 s revokes the order.

The order's transfer ids are derived from the order id, so a step interrupted by a crash is finished (or
undone) at the next start by looking the transfers up in the ledger: money is never moved twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tosplus.core import bus as events
from tosplus.core.bus import Event
from tosplus.core.commands import FINAL, SUCCEEDED
from tosplus.core.ids import new_id, now_ms
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import tables_intents, webhooks
from tosplus.services.payments import tables_payments as t
from tosplus.services.payments.counter_quick import QuickLane
from tosplus.services.payments.idempotency import Idempotency, RequestIdentity, StoredResponse
from tosplus.services.payments.ledger_types import NewTransfer, TransferFlags
from tosplus.services.payments.paycode import PayCodeError, PayCodeVerifier, parse
from tosplus.services.payments.risk import RiskControls
from tosplus.services.payments.service import (
    FEE_ACCOUNT,
    PAYMENT,
    PLATFORM_FEE,
    Merchant,
    PaymentDeclined,
    Payments,
    PaymentToken,
    _amount,
    wallet_account,
)

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)
SUCCESS, USERPAYING, CLOSED, REVOKED, PROCESSING = "SUCCESS", "USERPAYING", "CLOSED", "REVOKED", "PROCESSING"
_DECISIONS = {
    SUCCESS: "payment.succeeded",
    USERPAYING: "payment.awaiting_confirmation",
    CLOSED: "payment.refused",
    REVOKED: "payment.revoked",
}
_EVENTS = {
    SUCCESS: "payment.succeeded",
    USERPAYING: "payment.userpaying",
    CLOSED: "payment.closed",
    REVOKED: "payment.revoked",
}
CONFIRM_S = 45
SUSPEND_AFTER_FAILED_CONFIRMATIONS = 3
_TRADE_NO = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class UsedCodesTable:
    """Spent pay codes in the database: the primary key makes "accept once" atomic across hub processes."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def mark_used(self, token_number: int, step: int, counter: int) -> bool:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = insert(t.used_pay_codes).values(
            token_number=token_number, step=step, counter=counter, used_at=now_ms()
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(statement.on_conflict_do_nothing())
        return bool(result.rowcount == 1)


class Counter:
    def __init__(self, hub: Hub, payments: Payments) -> None:
        self.hub = hub
        self.payments = payments
        self.engine = payments.engine
        self.verifier = PayCodeVerifier(self._key_for, UsedCodesTable(self.engine))
        self._by_command: dict[str, str] = {}  # confirmation command id -> order id
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lock = asyncio.Lock()  # orders change state one at a time
        self.confirm_s = CONFIRM_S  # how long the person has to confirm on the device
        self.risk = RiskControls()
        self.quick = QuickLane(self)  # the plain payments, many to one transaction

    def _key_for(self, token_number: int) -> bytes | None:
        token = self.payments.token_by_number(token_number)
        return token.key if token else None

    async def start(self) -> None:
        self.hub.bus.listen(events.COMMAND, self._on_command)
        await self.recover()

    # -- micropay ---------------------------------------------------------------------------------------------

    async def micropay(
        self,
        merchant: Merchant,
        auth_code: str,
        amount: int,
        out_trade_no: str,
        description: str | None,
        *,
        velocity_counted: bool = False,
    ) -> dict[str, Any]:
        """The regular path, for every case (the quick lane takes the plain ones first: counter_quick.py);
        ``velocity_counted``: the quick lane already let this payment through the velocity limits."""
        _amount(amount, "amount")
        if not self.trade_no_ok(out_trade_no):
            raise InvalidInput("out_trade_no must be 1-64 letters, digits or _ . : -")
        known = await self._order(merchant.id, out_trade_no)
        if known is not None:
            if known["amount"] != amount:
                raise Conflict(f"order {out_trade_no} exists with another amount")
            return public(known)
        token = await self._verify(auth_code, merchant, amount)
        reason = await self._refusal(token, amount, velocity_counted=velocity_counted)
        order = self.new_order(
            merchant, token, amount, out_trade_no, description, state=CLOSED if reason else PROCESSING
        )
        order["reason"] = reason
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.orders).values(**order))
        if reason:
            await self._audit(token, "payment.refused", order)
            raise PaymentDeclined(reason)
        if amount > token.confirm_above:
            return public(await self._ask_device(order, merchant, token))
        return public(await self._pay_now(order, merchant))

    async def pay_request(
        self,
        idempotency: Idempotency,
        identity: RequestIdentity,
        merchant: Merchant,
        auth_code: str,
        amount: int,
        out_trade_no: str,
        description: str | None,
    ) -> tuple[StoredResponse, bool]:
        """A micropay request as the API gets it: the quick lane if it can, else the regular path behind the
        request's Idempotency-Key. The answer, and whether it replays an earlier one."""
        quick = await self.quick.pay(merchant, identity, auth_code, amount, out_trade_no, description)
        if quick.answer is not None:
            return quick.answer, False

        async def act() -> StoredResponse:
            order = await self.micropay(
                merchant, auth_code, amount, out_trade_no, description, velocity_counted=quick.velocity_counted
            )
            return StoredResponse.of_json(order)

        return await idempotency.run(identity.scope, identity.key, identity.fingerprint, act)

    @staticmethod
    def trade_no_ok(out_trade_no: str) -> bool:
        return bool(_TRADE_NO.match(out_trade_no))

    @staticmethod
    def new_order(
        merchant: Merchant, token: PaymentToken, amount: int, out_trade_no: str, description: str | None, *, state: str
    ) -> dict[str, Any]:
        """A new order's row (a ``SUCCESS`` one is paid by :meth:`payment_transfers`, pay:<order id>)."""
        moment = now_ms()
        order_id = new_id("ord")
        return {
            "id": order_id,
            "merchant_id": merchant.id,
            "out_trade_no": out_trade_no,
            "amount": amount,
            "currency": merchant.currency,
            "description": description,
            "token_id": token.id,
            "user_id": token.user_id,
            "device_id": token.device_id,
            "state": state,
            "reason": None,
            "transfer_id": f"pay:{order_id}" if state == SUCCESS else None,
            "command_id": None,
            "fee": amount * merchant.fee_bps // 10_000,
            "created_at": moment,
            "updated_at": moment,
        }

    def payment_transfers(self, order: dict[str, Any], merchant: Merchant) -> list[NewTransfer]:
        """An order paid at once: the wallet pays the merchant and the merchant the fee, linked (both or none)."""
        transfers = self._transfers(order, merchant.account, pending=False) + self._fee(order, merchant.account)
        if len(transfers) == 2:
            transfers[0] = _linked(transfers[0])
        return transfers

    async def _verify(self, auth_code: str, merchant: Merchant, amount: int) -> PaymentToken:
        try:
            verified = await self.verifier.verify(auth_code)
        except PayCodeError as exc:
            # The device's owner sees every attempt on their token, refused ones above all.
            token = None
            with contextlib.suppress(PayCodeError):
                token = self.payments.token_by_number(parse(auth_code).token_number)
            if token is not None:
                await self._audit(
                    token,
                    "payment.code_refused",
                    {"merchant": merchant.name, "amount": amount, "reason": exc.reason},
                )
                if exc.reason in ("forged", "expired") and self.risk.bad_code(token.id) and token.status == "active":
                    token = await self.payments.update_token(token.device_id, status="suspended")
                    await self._audit(token, "payment.token_suspended", {"reason": "too many bad pay codes"})
            raise
        token = self.payments.token_by_number(verified.token_number)
        if token is None:
            raise NotFound("this pay code's token no longer exists")
        if token.status != "active":
            await self._audit(token, "payment.refused", {"merchant": merchant.name, "reason": "suspended"})
            raise Forbidden("payment on this device is suspended by its owner")
        return token

    async def _refusal(self, token: PaymentToken, amount: int, *, velocity_counted: bool = False) -> str | None:
        if amount > token.per_payment_limit:
            return f"over this device's limit of {token.per_payment_limit} per payment"
        too_fast = None if velocity_counted else self.risk.velocity_refusal(token.id, token.user_id)
        if too_fast:
            return too_fast
        day_start = now_ms() // 86_400_000 * 86_400_000  # the day in UTC
        async with self.engine.connect() as conn:
            spent = await tables_intents.spent_today(conn, token.id, day_start)  # counter and in-app together
        if spent + amount > token.daily_limit:
            return f"over this device's daily limit of {token.daily_limit} (spent today: {spent})"
        (wallet,) = await self.payments.ledger.lookup_accounts([wallet_account(token.user_id)])
        if wallet.available < amount:
            return "insufficient balance in the wallet"
        return None

    def _transfers(self, order: dict[str, Any], merchant_account: str, *, pending: bool) -> list[NewTransfer]:
        pay = NewTransfer(
            f"pay:{order['id']}",
            wallet_account(order["user_id"]),
            merchant_account,
            order["amount"],
            order["currency"],
            PAYMENT,
            int(TransferFlags.PENDING) if pending else 0,
            timeout_s=self.confirm_s + 30 if pending else 0,
            user_data=order["id"],
        )
        return [pay]

    def _fee(self, order: dict[str, Any], merchant_account: str) -> list[NewTransfer]:
        if not order["fee"]:
            return []
        return [
            NewTransfer(
                f"fee:{order['id']}",
                merchant_account,
                FEE_ACCOUNT,
                order["fee"],
                order["currency"],
                PLATFORM_FEE,
                user_data=order["id"],
            )
        ]

    async def _pay_now(self, order: dict[str, Any], merchant: Merchant) -> dict[str, Any]:
        transfers = self.payment_transfers(order, merchant)
        results = await self.payments.ledger.create_transfers(transfers)
        if all(res in r.SUCCEEDED for res in results):
            return await self._set_state(order["id"], SUCCESS, transfer_id=transfers[0].id)
        reason = "insufficient balance in the wallet" if r.EXCEEDS_CREDITS in results else f"refused: {results}"
        await self._set_state(order["id"], CLOSED, reason=reason)
        raise PaymentDeclined(reason)

    async def _ask_device(self, order: dict[str, Any], merchant: Merchant, token: PaymentToken) -> dict[str, Any]:
        (result,) = await self.payments.ledger.create_transfers(self._transfers(order, merchant.account, pending=True))
        if result not in r.SUCCEEDED:
            reason = "insufficient balance in the wallet" if result == r.EXCEEDS_CREDITS else f"refused: {result}"
            await self._set_state(order["id"], CLOSED, reason=reason)
            raise PaymentDeclined(reason)
        params = {
            "order_id": order["id"],
            "amount": order["amount"],
            "currency": order["currency"],
            "merchant": merchant.name,
            "description": order["description"] or "",
        }
        # Under the lock: a quick device answers before USERPAYING is written, and _confirmation (which takes
        # the lock) would otherwise find the order still PROCESSING and drop the answer.
        async with self.lock:
            command = await self.hub.commands.send(
                token.device_id, "confirm_payment", params, timeout_s=self.confirm_s, wait=False
            )
            self._by_command[command.id] = order["id"]
            updated = await self._set_state(
                order["id"], USERPAYING, transfer_id=f"pay:{order['id']}", command_id=command.id
            )
        if command.state in FINAL:  # the device is offline: the command failed at once
            await self._confirmation(order["id"], command.state, command.result)
            updated = await self._order_by_id(order["id"])
        return updated

    def _on_command(self, event: Event) -> None:
        order_id = self._by_command.get(str(event.data.get("id")))
        if order_id and event.data.get("state") in FINAL:
            self._spawn(self._confirmation(order_id, event.data["state"], event.data.get("result")))

    async def _confirmation(self, order_id: str, state: str, result: Any) -> None:
        """The device answered (or could not): post the reservation and the fee, or void it."""
        async with self.lock:
            order = await self._order_by_id(order_id)
            if order["state"] != USERPAYING:
                return
            self._by_command.pop(order["command_id"] or "", None)
            confirmed = state == SUCCEEDED and isinstance(result, dict) and result.get("confirmed") is True
            merchant = self.payments.merchants[order["merchant_id"]]
            if confirmed and order["created_at"] + self.confirm_s * 1000 >= now_ms():
                post = NewTransfer(
                    f"post:{order_id}",
                    "",
                    "",
                    0,
                    "",
                    PAYMENT,
                    int(TransferFlags.POST_PENDING),
                    pending_id=f"pay:{order_id}",
                    user_data=order_id,
                )
                transfers = [post, *self._fee(order, merchant.account)]
                if len(transfers) == 2:
                    transfers[0] = _linked(transfers[0])
                results = await self.payments.ledger.create_transfers(transfers)
                if all(res in r.SUCCEEDED for res in results):
                    await self._set_state(order_id, SUCCESS)
                    await self._confirmed(order, ok=True)
                    return
            await self._void(order, "not confirmed on the device" if not confirmed else "confirmed too late")
            await self._confirmed(order, ok=False)

    async def _void(self, order: dict[str, Any], reason: str) -> None:
        void = NewTransfer(
            f"void:{order['id']}",
            "",
            "",
            0,
            "",
            PAYMENT,
            int(TransferFlags.VOID_PENDING),
            pending_id=f"pay:{order['id']}",
            user_data=order["id"],
        )
        (result,) = await self.payments.ledger.create_transfers([void])
        if result not in (*r.SUCCEEDED, r.PENDING_TRANSFER_EXPIRED, r.PENDING_TRANSFER_ALREADY_VOIDED):
            log.error("order %s: the reservation could not be voided: %s", order["id"], result)
        await self._set_state(order["id"], REVOKED, reason=reason)

    async def _confirmed(self, order: dict[str, Any], *, ok: bool) -> None:
        """Count refused or missed confirmations; suspend the token after too many in a row."""
        token = self.payments.tokens.get(order["device_id"])
        if token is None:
            return
        if ok:
            if token.failed_confirmations:
                await self.payments.update_token(token.device_id, failed_confirmations=0)
            return
        failed = token.failed_confirmations + 1
        status = "suspended" if failed >= SUSPEND_AFTER_FAILED_CONFIRMATIONS else token.status
        token = await self.payments.update_token(token.device_id, failed_confirmations=failed, status=status)
        if status == "suspended":
            await self._audit(token, "payment.token_suspended", {"failed_confirmations": failed})

    # -- merchants' other calls -------------------------------------------------------------------------------

    async def query(self, merchant: Merchant, out_trade_no: str) -> dict[str, Any]:
        return public(await self._own_order(merchant, out_trade_no))

    async def _own_order(self, merchant: Merchant, out_trade_no: str) -> dict[str, Any]:
        order = await self._order(merchant.id, out_trade_no)
        if order is None:
            raise NotFound(f"no order {out_trade_no}")
        return order

    async def reverse(self, merchant: Merchant, out_trade_no: str) -> dict[str, Any]:
        """Cancel at the counter: a reservation is released, a paid order is paid back in full."""
        async with self.lock:
            order = await self._own_order(merchant, out_trade_no)
            if order["state"] == SUCCESS and await self._refunded(order):
                raise Conflict("this order has refunds; refund what is left instead of reversing it")
            if order["state"] == USERPAYING:
                await self._void(order, "reversed by the merchant")
            elif order["state"] == SUCCESS:
                back = [
                    NewTransfer(
                        f"reverse:{order['id']}",
                        merchant.account,
                        wallet_account(order["user_id"]),
                        order["amount"],
                        order["currency"],
                        PAYMENT,
                        user_data=order["id"],
                    )
                ]
                if order["fee"]:
                    back = [
                        NewTransfer(
                            f"unfee:{order['id']}",
                            FEE_ACCOUNT,
                            merchant.account,
                            order["fee"],
                            order["currency"],
                            PLATFORM_FEE,
                            int(TransferFlags.LINKED),
                            user_data=order["id"],
                        ),
                        *back,
                    ]
                results = await self.payments.ledger.create_transfers(back)
                if not all(res in r.SUCCEEDED for res in results):
                    raise Conflict(f"the order could not be reversed: {results}")
                await self._set_state(order["id"], REVOKED, reason="reversed by the merchant")
            return await self.query(merchant, out_trade_no)

    async def _refunded(self, order: dict[str, Any]) -> int:
        from tosplus.services.payments.refunds import Refunds

        return await Refunds(self.hub).refunded(order)

    # -- upkeep -----------------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Revoke orders whose confirmation did not come in time (also after a restart)."""
        deadline = now_ms() - self.confirm_s * 1000
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.orders.c.id).where(t.orders.c.state == USERPAYING, t.orders.c.created_at < deadline)
            )
            late = [row.id for row in rows]
        for order_id in late:
            await self._confirmation(order_id, "TIMED_OUT", None)
        return len(late)

    async def recover(self) -> None:
        """Finish what a crash interrupted: an order in PROCESSING is SUCCESS if its transfer is in the ledger
        (or USERPAYING if it is a reservation), else CLOSED — nothing was moved."""
        async with self.engine.connect() as conn:
            stuck = [
                dict(row._mapping)
                for row in await conn.execute(sa.select(t.orders).where(t.orders.c.state == PROCESSING))
            ]
            waiting = await conn.execute(
                sa.select(t.orders.c.id, t.orders.c.command_id).where(t.orders.c.state == USERPAYING)
            )
            for row in waiting:
                if row.command_id:
                    self._by_command[row.command_id] = row.id
        for order in stuck:
            recorded = await self.payments.ledger.lookup_transfers([f"pay:{order['id']}"])
            if not recorded:
                await self._set_state(order["id"], CLOSED, reason="interrupted before any money moved")
            elif recorded[0].flags & TransferFlags.PENDING:
                await self._void(order, "interrupted before the device was asked")
            else:
                merchant = self.payments.merchants[order["merchant_id"]]
                fee = self._fee(order, merchant.account)
                if fee and not await self.payments.ledger.lookup_transfers([fee[0].id]):
                    await self.payments.ledger.create_transfers(fee)
                await self._set_state(order["id"], SUCCESS, transfer_id=recorded[0].id)

    # -- storage ----------------------------------------------------------------------------------------------

    async def _order(self, merchant_id: str, out_trade_no: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.orders).where(
                        t.orders.c.merchant_id == merchant_id, t.orders.c.out_trade_no == out_trade_no
                    )
                )
            ).first()
        return _order_json(row._mapping) if row else None

    async def _order_by_id(self, order_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.orders).where(t.orders.c.id == order_id))).first()
        if row is None:
            raise NotFound(f"no order {order_id}")
        return _order_json(row._mapping)

    async def _set_state(self, order_id: str, state: str, **values: Any) -> dict[str, Any]:
        """Change the order's state; a final state is told to the merchant's webhooks in the same transaction."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.orders).where(t.orders.c.id == order_id).values(state=state, updated_at=now_ms(), **values)
            )
            row = (await conn.execute(sa.select(t.orders).where(t.orders.c.id == order_id))).first()
            if row is None:
                raise NotFound(f"no order {order_id}")
            order = _order_json(row._mapping)
            decision = _DECISIONS.get(state)
            if state in _EVENTS:
                await webhooks.enqueue_for_owner(
                    conn, order["merchant_id"], webhooks.new_event(_EVENTS[state], public(order))
                )
        if decision and order["device_id"]:
            # Every decision on a payment is in the owner's audit log, not only the refusals.
            await self.hub.people.audit.record(
                None,
                decision,
                home_id=self.hub.people.homes.device_home.get(order["device_id"]),
                device_id=order["device_id"],
                detail={"order_id": order["id"], "amount": order["amount"], "reason": order["reason"]},
                actor_label="payment counter",
            )
        return order

    async def _audit(self, token: PaymentToken, action: str, detail: dict[str, Any]) -> None:
        people = self.hub.people
        home_id = people.homes.device_home.get(token.device_id)
        await people.audit.record(
            None, action, home_id=home_id, device_id=token.device_id, detail=detail, actor_label="payment counter"
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _linked(transfer: NewTransfer) -> NewTransfer:
    from dataclasses import replace

    return replace(transfer, flags=int(transfer.flags) | int(TransferFlags.LINKED))


def _order_json(row: Any) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}  # plain str keys: orjson refuses SQLAlchemy's quoted names


public = t.public_order
