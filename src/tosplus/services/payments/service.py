"""The payment service: people's wallets, merchants, and the payment tokens of devices, on top of the ledger.

Ledger accounts (all in CNY unless a merchant says otherwise):

- ``wallet:<user id>`` — a person's money; it can never go below zero (debits must not exceed credits);
- ``merchant:<merchant id>`` — what a shop has been paid;
- ``fee:platform`` — the platform's share of every payment;
- ``funding:cards`` — where top-ups come from (the simulated bank card network; it goes negative by design:
  it is the outside world's money coming in);
- ``payouts:bank`` — where merchants' withdrawals go (the simulated bank: money leaving the platform).

A device never learns whose wallet it pays from: it holds a payment token (a random 8-digit number and a key
for pay codes); the hub maps the token to the wallet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import hash_secret, new_id, now_ms
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from tosplus.sdk.paycode import luhn_ok, new_key
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments import tables_payments as t
from tosplus.services.payments.ledger import Ledger
from tosplus.services.payments.ledger_types import Account, AccountFlags, NewAccount, NewTransfer

CURRENCY = "CNY"
WALLET, MERCHANT, FEE, FUNDING = 1, 2, 3, 4  # account codes
PAYOUTS = 5  # account code of the simulated bank merchants withdraw to
TOP_UP, PAYMENT, PLATFORM_FEE, REFUND = 1, 2, 3, 4  # transfer codes
WITHDRAWAL = 5  # transfer code: a merchant's money to its bank account
FEE_ACCOUNT, FUNDING_ACCOUNT = "fee:platform", "funding:cards"
PAYOUT_ACCOUNT = "payouts:bank"
MERCHANT_KEY_PREFIX = "tmk_"
DECLINED_CARDS = {"4000000000000002"}  # the simulated card network's "declined" card (as Stripe's test card)
MAX_TOP_UP = 5_000_000  # 50,000.00 CNY at once


class PaymentDeclined(Conflict):
    status = 402
    title = "Payment declined"


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    owner_id: str | None
    fee_bps: int
    currency: str
    created_at: int

    @property
    def account(self) -> str:
        return f"merchant:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner_id": self.owner_id,
            "fee_bps": self.fee_bps,
            "currency": self.currency,
            "account": self.account,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class PaymentToken:
    id: str
    token_number: int
    device_id: str
    user_id: str
    key: bytes
    status: str
    per_payment_limit: int
    daily_limit: int
    confirm_above: int
    failed_confirmations: int
    created_at: int
    updated_at: int

    def to_json(self) -> dict[str, Any]:
        """What the person sees (never the key)."""
        return {
            "id": self.id,
            "device_id": self.device_id,
            "status": self.status,
            "per_payment_limit": self.per_payment_limit,
            "daily_limit": self.daily_limit,
            "confirm_above": self.confirm_above,
            "failed_confirmations": self.failed_confirmations,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def wallet_account(user_id: str) -> str:
    return f"wallet:{user_id}"


def _amount(value: Any, what: str, maximum: int = 2**53) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise InvalidInput(f"{what} must be a whole number of fen (minor units) from 1 to {maximum}")
    return value


class Payments:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.ledger = Ledger(engine)
        self.merchants: dict[str, Merchant] = {}
        self._merchant_keys: dict[str, str] = {}  # API key hash -> merchant id
        self.tokens: dict[str, PaymentToken] = {}  # by device id
        self._by_number: dict[int, PaymentToken] = {}
        # Called with (device id, token before, token after; None when there is none) after every change of a
        # token, so the device can be told at once (services/payments/activation.py). Must not block.
        self.on_token_change: list[Callable[[str, PaymentToken | None, PaymentToken | None], None]] = []

    async def load(self) -> None:
        await self.ledger.load()
        await self.ledger.create_accounts(
            [
                NewAccount(FEE_ACCOUNT, CURRENCY, FEE),
                NewAccount(FUNDING_ACCOUNT, CURRENCY, FUNDING),
                NewAccount(PAYOUT_ACCOUNT, CURRENCY, PAYOUTS, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
            ]
        )
        async with self.engine.connect() as conn:
            for row in await conn.execute(sa.select(t.merchants)):
                self._remember_merchant(
                    Merchant(row.id, row.name, row.owner_id, row.fee_bps, row.currency, row.created_at),
                    row.api_key_hash,
                )
            for row in await conn.execute(sa.select(t.payment_tokens)):
                self._remember_token(_token(row))

    # -- wallets ----------------------------------------------------------------------------------------------

    async def wallet(self, user_id: str) -> Account:
        """The person's wallet account (opened on first use)."""
        account_id = wallet_account(user_id)
        found = await self.ledger.lookup_accounts([account_id])
        if found:
            return found[0]
        await self.ledger.create_accounts(
            [NewAccount(account_id, CURRENCY, WALLET, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, user_id)]
        )
        return (await self.ledger.lookup_accounts([account_id]))[0]

    async def top_up(self, user_id: str, amount: int, card_number: str, transfer_id: str) -> Account:
        """Money from a (simulated) bank card into the wallet; ``transfer_id`` makes a retry harmless."""
        _amount(amount, "amount", MAX_TOP_UP)
        card = "".join(card_number.split())
        if not (card.isdigit() and 12 <= len(card) <= 19 and luhn_ok(card)):
            raise InvalidInput("card_number is not a valid card number (check the digits)")
        if card in DECLINED_CARDS:
            raise PaymentDeclined("the card was declined by its bank")
        await self.wallet(user_id)
        transfer = NewTransfer(transfer_id, FUNDING_ACCOUNT, wallet_account(user_id), amount, CURRENCY, TOP_UP)
        (result,) = await self.ledger.create_transfers([transfer])
        if result not in r.SUCCEEDED:
            raise Conflict(f"the top-up was not recorded: {result}")
        return await self.wallet(user_id)

    # -- merchants --------------------------------------------------------------------------------------------

    def _remember_merchant(self, merchant: Merchant, key_hash: str) -> None:
        self.merchants[merchant.id] = merchant
        self._merchant_keys[key_hash] = merchant.id

    async def create_merchant(self, name: str, owner_id: str | None, fee_bps: int = 60) -> tuple[Merchant, str]:
        """A merchant and its API key (shown once)."""
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name must be 1 to 200 characters")
        if not 0 <= fee_bps <= 1000:
            raise InvalidInput("fee_bps must be 0 to 1000 (10 %)")
        merchant = Merchant(new_id("mch"), name, owner_id, fee_bps, CURRENCY, now_ms())
        key = MERCHANT_KEY_PREFIX + secrets.token_urlsafe(32)
        await self.ledger.create_accounts([NewAccount(merchant.account, CURRENCY, MERCHANT, 0, merchant.id)])
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(t.merchants).values(
                    id=merchant.id,
                    name=name,
                    owner_id=owner_id,
                    api_key_hash=hash_secret(key),
                    fee_bps=fee_bps,
                    currency=CURRENCY,
                    created_at=merchant.created_at,
                )
            )
        self._remember_merchant(merchant, hash_secret(key))
        return merchant, key

    def merchant_for_key(self, key: str) -> Merchant:
        merchant_id = self._merchant_keys.get(hash_secret(key)) if key.startswith(MERCHANT_KEY_PREFIX) else None
        if merchant_id is None:
            raise Unauthorized("a valid merchant API key is required (Authorization: Bearer tmk_...)")
        return self.merchants[merchant_id]

    # -- payment tokens ---------------------------------------------------------------------------------------

    def _remember_token(self, token: PaymentToken) -> None:
        self.tokens[token.device_id] = token
        self._by_number[token.token_number] = token

    def token_by_number(self, number: int) -> PaymentToken | None:
        return self._by_number.get(number)

    def token_for_device(self, device_id: str) -> PaymentToken:
        token = self.tokens.get(device_id)
        if token is None:
            raise NotFound("payment is not enabled on this device")
        return token

    async def enable(
        self, user_id: str, device_id: str, *, per_payment_limit: int, daily_limit: int, confirm_above: int
    ) -> PaymentToken:
        """Give the device a payment token paying from the person's wallet (one token per device)."""
        if device_id in self.tokens:
            raise Conflict("payment is already enabled on this device; change its limits or delete it first")
        _check_limits(per_payment_limit, daily_limit, confirm_above)
        await self.wallet(user_id)
        number = secrets.randbelow(90_000_000) + 10_000_000  # random, never sequential: numbers are public
        while number in self._by_number:
            number = secrets.randbelow(90_000_000) + 10_000_000
        moment = now_ms()
        token = PaymentToken(
            new_id("ptk"),
            number,
            device_id,
            user_id,
            new_key(),
            "active",
            per_payment_limit,
            daily_limit,
            confirm_above,
            0,
            moment,
            moment,
        )
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.payment_tokens).values(**_token_row(token)))
        self._remember_token(token)
        self._changed(device_id, None, token)
        return token

    async def update_token(self, device_id: str, **changes: Any) -> PaymentToken:
        token = self.token_for_device(device_id)
        if "status" in changes and changes["status"] not in ("active", "suspended"):
            raise InvalidInput("status must be active or suspended")
        new = replace(token, **changes, updated_at=now_ms())
        if changes.get("status") == "active":
            new = replace(new, failed_confirmations=0)
        _check_limits(new.per_payment_limit, new.daily_limit, new.confirm_above)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.payment_tokens).where(t.payment_tokens.c.id == token.id).values(**_token_row(new))
            )
        self._remember_token(new)
        self._changed(device_id, token, new)
        return new

    async def delete_token(self, device_id: str) -> None:
        token = self.tokens.pop(device_id, None)
        if token is None:
            return
        self._by_number.pop(token.token_number, None)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.payment_tokens).where(t.payment_tokens.c.id == token.id))
        self._changed(device_id, token, None)

    def _changed(self, device_id: str, before: PaymentToken | None, after: PaymentToken | None) -> None:
        for hook in self.on_token_change:
            hook(device_id, before, after)

    def device_credentials(self, device_id: str) -> dict[str, Any]:
        """What the device itself receives: its token number and key, never the wallet."""
        token = self.token_for_device(device_id)
        if token.status != "active":
            raise Forbidden("payment on this device is suspended by its owner")
        import base64

        return {
            "token_number": token.token_number,
            "key": base64.b64encode(token.key).decode(),
            "confirm_above": token.confirm_above,
            "per_payment_limit": token.per_payment_limit,
        }


def _check_limits(per_payment_limit: int, daily_limit: int, confirm_above: int) -> None:
    _amount(per_payment_limit, "per_payment_limit")
    _amount(daily_limit, "daily_limit")
    if not isinstance(confirm_above, int) or confirm_above < 0:
        raise InvalidInput("confirm_above must be 0 or more fen (0: every payment is confirmed on the device)")
    if per_payment_limit > daily_limit:
        raise InvalidInput("per_payment_limit cannot be above daily_limit")


def _token(row: Any) -> PaymentToken:
    return PaymentToken(
        row.id,
        row.token_number,
        row.device_id,
        row.user_id,
        bytes(row.key),
        row.status,
        row.per_payment_limit,
        row.daily_limit,
        row.confirm_above,
        row.failed_confirmations,
        row.created_at,
        row.updated_at,
    )


def _token_row(token: PaymentToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "token_number": token.token_number,
        "device_id": token.device_id,
        "user_id": token.user_id,
        "key": token.key,
        "status": token.status,
        "per_payment_limit": token.per_payment_limit,
        "daily_limit": token.daily_limit,
        "confirm_above": token.confirm_above,
        "failed_confirmations": token.failed_confirmations,
        "created_at": token.created_at,
        "updated_at": token.updated_at,
    }
