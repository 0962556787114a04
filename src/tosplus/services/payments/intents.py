"""Payment intents: an app or a device asks the person to pay (a TV game, a fridge order), the person confirms.

Stripe's states: ``requires_confirmation`` → ``processing`` (money being moved) → ``succeeded``; or ``canceled``
(by the person, the merchant or the device, or ``expired`` when nobody confirmed in time). An intent pays from
the wallet behind the device's payment token, fixed at creation; the merchant never learns whose wallet.

Nothing is reserved while an intent waits (as with Stripe): the money moves when the person confirms, on the
device (the ``confirm_payment`` command, as at the counter) or in the console. A confirmation that cannot pay
(insufficient balance, a device limit) leaves the intent confirmable, with ``last_payment_error``: the person
may top up and confirm again until it expires.

Crash safety: the intent is marked ``processing`` before one linked ledger batch (wallet → merchant, merchant →
fee) whose transfer ids derive from the intent's id; an intent found ``processing`` (at start, or by the next
confirmation) is settled by looking the transfer up in the ledger. All state changes are conditional updates
(``WHERE status = ...``) made under one lock, and each change a merchant cares about is enqueued to its
webhooks in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tosplus.core import bus as events
from tosplus.core import commands as cmd
from tosplus.core.bus import Event
from tosplus.core.ids import now_ms
from tosplus.core.tokens import Principal
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, TosError, Unauthorized
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import tables_intents as ti
from tosplus.services.payments import webhooks
from tosplus.services.payments.ledger_types import NewTransfer, TransferFlags
from tosplus.services.payments.service import (
    FEE_ACCOUNT,
    PAYMENT,
    PLATFORM_FEE,
    Merchant,
    PaymentDeclined,
    PaymentToken,
    _amount,
    wallet_account,
)
from tosplus.services.payments.tables_intents import CANCELED, PROCESSING, REQUIRES_CONFIRMATION, SUCCEEDED, pi

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)
EXPIRY_S = 600  # an intent nobody confirmed is canceled as expired after 10 minutes
MAX_OPEN_PER_DEVICE = 10  # intents waiting on one device at once: bounds prompts a merchant can push
_UNCONFIRMED: dict[str, Any] = {"confirmed_via": None, "confirmed_at": None}
_NO_ERROR: dict[str, Any] = {"last_error_code": None, "last_error": None}


class Intents:
    def __init__(self, hub: Hub, *, expiry_s: int = EXPIRY_S) -> None:
        self.hub = hub
        self.payments = hub.payments
        self.engine = hub.payments.engine
        self.expiry_s = expiry_s  # applies to intents created from now on (each row keeps its expires_at)
        # Device-signed requests seen lately (signature -> when), oldest first: each is accepted once. Memory is
        # enough since one process owns the payments; a signed creation also stores its own signature.
        self.seen_signatures: OrderedDict[str, float] = OrderedDict()
        self._lock = asyncio.Lock()  # intents change state one at a time: confirm, cancel and expiry never race
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert

    async def start(self) -> None:
        """Hear the devices' answers, and settle what a crash left in ``processing``."""
        if self._started:
            return
        self._started = True
        self.hub.bus.listen(events.COMMAND, self._on_command)
        await self.recover()

    # -- creating -----------------------------------------------------------------------------------------------

    async def create(
        self,
        merchant: Merchant,
        token: PaymentToken,
        intent_id: str,
        *,
        amount: int,
        currency: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        created_by: str = "merchant",
        signature: str | None = None,
    ) -> dict[str, Any]:
        """A new intent paying ``merchant`` from ``token``'s wallet; the device is asked to confirm at once.
        ``intent_id`` is derived from the request's idempotency key: creating it again returns the first."""
        _amount(amount, "amount")
        if currency.upper() != merchant.currency:
            raise InvalidInput(f"currency must be {merchant.currency}, the merchant's and the wallet's")
        meta = ti.check_metadata(metadata)
        if token.status != "active":
            raise Forbidden("payment on this device is suspended by its owner")
        if amount > token.per_payment_limit:
            await self._audit(token.device_id, "payment_intent.refused", {"merchant": merchant.name, "amount": amount})
            raise PaymentDeclined(f"over this device's limit of {token.per_payment_limit} per payment")
        async with self._lock:
            moment = now_ms()
            row = {
                "id": intent_id,
                "merchant_id": merchant.id,
                "amount": amount,
                "currency": merchant.currency,
                "description": description,
                "metadata": meta,
                "device_id": token.device_id,
                "token_id": token.id,
                "user_id": token.user_id,
                "created_by": created_by,
                "status": REQUIRES_CONFIRMATION,
                "fee": amount * merchant.fee_bps // 10_000,
                "request_signature": signature,
                "expires_at": moment + self.expiry_s * 1000,
                "created_at": moment,
                "updated_at": moment,
            }
            async with self.engine.begin() as conn:
                existing = await ti.read(conn, intent_id)
                if existing is not None:
                    return existing  # the same request's retry
                open_ = (pi.c.device_id == token.device_id) & (pi.c.status == REQUIRES_CONFIRMATION)
                waiting = sa.select(sa.func.count()).where(open_)
                if int((await conn.execute(waiting)).scalar() or 0) >= MAX_OPEN_PER_DEVICE:
                    raise RateLimited(f"{MAX_OPEN_PER_DEVICE} payments already wait for this device's owner")
                inserted = await conn.execute(self._insert(pi).values(**row).on_conflict_do_nothing())
                if inserted.rowcount != 1:  # the only other unique column: this signature was used
                    raise Unauthorized("this signed request was already used: sign every request anew")
                event = webhooks.new_event("payment_intent.created", ti.merchant_view(row))
                await webhooks.enqueue_for_owner(conn, merchant.id, event)
            told = {"merchant": merchant.name, "amount": amount, "id": intent_id}
            await self._audit(token.device_id, "payment_intent.created", told)
            await self._ask_device(row, merchant)
            return await self.get(intent_id)

    async def _ask_device(self, intent: dict[str, Any], merchant: Merchant) -> None:
        """Send ``confirm_payment`` as the counter does. A device that is offline or cannot confirm changes
        nothing: the person can still confirm in the console."""
        params = {"order_id": intent["id"], "amount": intent["amount"], "currency": intent["currency"]}
        params |= {"merchant": merchant.name, "description": intent["description"] or ""}
        timeout = min(float(self.expiry_s), cmd.MAX_TIMEOUT_S)
        try:
            command = await self.hub.commands.send(
                intent["device_id"], "confirm_payment", params, timeout_s=timeout, wait=False
            )
        except TosError as exc:
            log.info("intent %s: the device cannot be asked to confirm: %s", intent["id"], exc.detail)
            return
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(pi).where(pi.c.id == intent["id"]).values(command_id=command.id))

    def _on_command(self, event: Event) -> None:
        data = event.data
        params = data.get("params")
        if data.get("name") != "confirm_payment" or data.get("state") not in cmd.FINAL or not isinstance(params, dict):
            return
        intent_id = params.get("order_id")
        if isinstance(intent_id, str) and intent_id.startswith("pi_"):
            self._spawn(self._device_answer(intent_id, str(data.get("id")), data))

    async def _device_answer(self, intent_id: str, command_id: str, command: dict[str, Any]) -> None:
        """Confirmed: pay. Declined (``{"confirmed": false}`` or an error from the device): cancel. Not sent,
        timed out or canceled: no decision, the intent waits for the console or its expiry."""
        state, result = command.get("state"), command.get("result")
        try:
            if state == cmd.SUCCEEDED and isinstance(result, dict) and result.get("confirmed") is True:
                await self.confirm(intent_id, via="device", command_id=command_id)
            elif state == cmd.SUCCEEDED or (state == cmd.FAILED and command.get("sent_at") is not None):
                await self.cancel(intent_id, "requested_by_customer", command_id=command_id)
        except TosError as exc:
            log.info("intent %s: the device's answer was not applied: %s", intent_id, exc.detail)

    # -- confirming and canceling -------------------------------------------------------------------------------

    async def confirm(
        self,
        intent_id: str,
        *,
        via: str,
        user_id: str | None = None,
        command_id: str | None = None,
        actor: Principal | None = None,
    ) -> dict[str, Any]:
        """Move the money: one linked batch, wallet → merchant and merchant → fee. ``user_id`` (the console)
        must own the wallet; ``command_id`` (the device) must be the prompt this intent sent."""
        async with self._lock:
            intent = await self.owned(intent_id, user_id=user_id)
            if command_id is not None and intent["command_id"] != command_id:
                return intent
            if intent["status"] == PROCESSING:
                intent = await self._settle(intent)
            if intent["status"] != REQUIRES_CONFIRMATION:
                raise Conflict(f"this payment intent is already {intent['status']}")
            if intent["expires_at"] <= now_ms():
                await self._cancel(intent, "expired")
                raise Conflict("this payment intent expired before it was confirmed")
            token = self.payments.tokens.get(intent["device_id"])
            if token is None or token.id != intent["token_id"]:
                await self._cancel(intent, "payment_token_removed")
                raise Conflict("payment is no longer enabled on this device: the intent was canceled")
            if token.status != "active":
                raise Forbidden("payment on this device is suspended by its owner")
            refusal = await self._refusal(token, intent["amount"])
            if refusal is not None:
                await self._failed(intent, *refusal)
                raise PaymentDeclined(refusal[1])
            await self._move(intent_id, REQUIRES_CONFIRMATION, PROCESSING, confirmed_via=via, confirmed_at=now_ms())
            merchant = self.payments.merchants[intent["merchant_id"]]
            results = await self.payments.ledger.create_transfers(_transfers(intent, merchant))
            if all(res in r.SUCCEEDED for res in results):
                done = await self._move(intent_id, PROCESSING, SUCCEEDED, "payment_intent.succeeded", **_NO_ERROR)
                await self._audit(intent["device_id"], "payment_intent.succeeded", {"id": intent_id, "via": via}, actor)
                return done
            await self._move(intent_id, PROCESSING, REQUIRES_CONFIRMATION, **_UNCONFIRMED)
            if r.EXCEEDS_CREDITS in results:
                refusal = ("insufficient_balance", "insufficient balance in the wallet")
            else:
                refusal = ("ledger_refused", f"the ledger refused the payment: {results}")
            await self._failed(intent, *refusal)
            raise PaymentDeclined(refusal[1])

    async def _refusal(self, token: PaymentToken, amount: int) -> tuple[str, str] | None:
        """The counter's limits, re-checked when the money moves (they may have changed since creation)."""
        if amount > token.per_payment_limit:
            return "per_payment_limit", f"over this device's limit of {token.per_payment_limit} per payment"
        async with self.engine.connect() as conn:
            spent = await ti.spent_today(conn, token.id, now_ms() // 86_400_000 * 86_400_000)  # the UTC day
        if spent + amount > token.daily_limit:
            return "daily_limit", f"over this device's daily limit of {token.daily_limit} (spent today: {spent})"
        (wallet,) = await self.payments.ledger.lookup_accounts([wallet_account(token.user_id)])
        if wallet.available < amount:
            return "insufficient_balance", "insufficient balance in the wallet"
        return None

    async def cancel(
        self,
        intent_id: str,
        reason: str,
        *,
        command_id: str | None = None,
        **owner: str | None,
    ) -> dict[str, Any]:
        """Cancel a waiting intent (nothing was reserved, so nothing moves); canceling twice answers the same."""
        async with self._lock:
            intent = await self.owned(intent_id, **owner)
            if command_id is not None and intent["command_id"] != command_id:
                return intent
            if intent["status"] == PROCESSING:
                intent = await self._settle(intent)
            if intent["status"] == CANCELED:
                return intent
            if intent["status"] == SUCCEEDED:
                raise Conflict("this payment intent already succeeded: refund it instead")
            return await self._cancel(intent, reason)

    async def _cancel(self, intent: dict[str, Any], reason: str) -> dict[str, Any]:
        done = await self._move(
            intent["id"], REQUIRES_CONFIRMATION, CANCELED, "payment_intent.canceled", cancellation_reason=reason
        )
        if intent["command_id"]:  # take the prompt off the device if it is still there
            with contextlib.suppress(TosError):
                await self.hub.commands.cancel(intent["device_id"], intent["command_id"])
        await self._audit(intent["device_id"], "payment_intent.canceled", {"id": intent["id"], "reason": reason})
        return done

    async def _failed(self, intent: dict[str, Any], code: str, message: str) -> None:
        """The confirmation could not pay: the intent stays confirmable and says why (Stripe's last_payment_error)."""
        event, error = "payment_intent.payment_failed", {"last_error_code": code, "last_error": message}
        await self._move(intent["id"], REQUIRES_CONFIRMATION, REQUIRES_CONFIRMATION, event, **error)

    # -- upkeep ------------------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Cancel intents nobody confirmed before their ``expires_at``; how many (the maintenance loop)."""
        async with self.engine.connect() as conn:
            due = sa.select(pi.c.id).where(pi.c.status == REQUIRES_CONFIRMATION, pi.c.expires_at <= now_ms())
            late = [row.id for row in await conn.execute(due)]
        expired = 0
        for intent_id in late:
            async with self._lock:
                intent = await self.get(intent_id)
                if intent["status"] == REQUIRES_CONFIRMATION:
                    await self._cancel(intent, "expired")
                    expired += 1
        return expired

    async def recover(self) -> int:
        """Settle intents a crash left in ``processing``: ``succeeded`` if the payment is in the ledger, else
        confirmable again (nothing moved); how many."""
        async with self.engine.connect() as conn:
            stuck = [row.id for row in await conn.execute(sa.select(pi.c.id).where(pi.c.status == PROCESSING))]
        for intent_id in stuck:
            async with self._lock:
                intent = await self.get(intent_id)
                if intent["status"] == PROCESSING:
                    await self._settle(intent)
        return len(stuck)

    async def _settle(self, intent: dict[str, Any]) -> dict[str, Any]:
        recorded = await self.payments.ledger.lookup_transfers([f"pay:{intent['id']}"])
        if not recorded:
            return await self._move(intent["id"], PROCESSING, REQUIRES_CONFIRMATION, **_UNCONFIRMED)
        fee = _fee(intent, self.payments.merchants[intent["merchant_id"]])
        if fee and not await self.payments.ledger.lookup_transfers([fee[0].id]):
            await self.payments.ledger.create_transfers(fee)
        return await self._move(intent["id"], PROCESSING, SUCCEEDED, "payment_intent.succeeded", **_NO_ERROR)

    # -- reading and storage -----------------------------------------------------------------------------------

    async def get(self, intent_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            intent = await ti.read(conn, intent_id)
        if intent is None:
            raise NotFound(f"no payment intent {intent_id}")
        return intent

    async def owned(self, intent_id: str, **owner: str | None) -> dict[str, Any]:
        """The intent if the caller may see it: ``user_id`` (the wallet's owner), ``merchant_id`` or ``device_id``
        (404 otherwise, so that ids of others' intents reveal nothing)."""
        intent = await self.get(intent_id)
        if any(value is not None and intent[column] != value for column, value in owner.items()):
            raise NotFound(f"no payment intent {intent_id}")
        return intent

    async def _move(
        self, intent_id: str, old: str, new: str, event: str | None = None, **values: Any
    ) -> dict[str, Any]:
        """``old`` → ``new`` only if the intent is still ``old``; ``event`` goes to the merchant's webhooks in
        the same transaction."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                sa.update(pi)
                .where(pi.c.id == intent_id, pi.c.status == old)
                .values(status=new, updated_at=now_ms(), **values)
            )
            if changed.rowcount != 1:
                raise Conflict(f"payment intent {intent_id} is no longer {old}")
            intent = await ti.read(conn, intent_id)
            assert intent is not None
            if event is not None:
                told = webhooks.new_event(event, ti.merchant_view(intent))
                await webhooks.enqueue_for_owner(conn, intent["merchant_id"], told)
        return intent

    async def _audit(self, device_id: str, action: str, detail: dict[str, Any], actor: Principal | None = None) -> None:
        """The device's home sees every intent on it: created, refused, paid, canceled."""
        home_id, label = self.hub.people.homes.device_home.get(device_id), None if actor else "payment intents"
        await self.hub.people.audit.record(
            actor, action, home_id=home_id, device_id=device_id, detail=detail, actor_label=label
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _transfers(intent: dict[str, Any], merchant: Merchant) -> list[NewTransfer]:
    """The payment and the platform's fee, linked (both or neither), with ids derived from the intent's."""
    i, fee, currency, wallet = intent["id"], intent["fee"], intent["currency"], wallet_account(intent["user_id"])
    link = int(TransferFlags.LINKED) if fee else 0
    pay = NewTransfer(f"pay:{i}", wallet, merchant.account, intent["amount"], currency, PAYMENT, link, user_data=i)
    return [pay, *_fee(intent, merchant)]


def _fee(intent: dict[str, Any], merchant: Merchant) -> list[NewTransfer]:
    i, fee = intent["id"], intent["fee"]
    return (
        [NewTransfer(f"fee:{i}", merchant.account, FEE_ACCOUNT, fee, intent["currency"], PLATFORM_FEE, user_data=i)]
        if fee
        else []
    )


async def intents_of(hub: Hub) -> Intents:
    """The hub's intents service (built and started by ``create_hub``)."""
    return hub.intents
