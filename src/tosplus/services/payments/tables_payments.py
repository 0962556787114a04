"""Tables of the payment service around the ledger: merchants, device payment tokens, counter orders and the
pay codes already spent. Money itself is only ever in the ledger's tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

from tosplus.storage.tables import metadata

merchants = Table(
    "merchants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("owner_id", String(32), nullable=True),  # the person who runs it, if any
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("fee_bps", Integer, nullable=False),  # the platform's share, in basis points
    Column("currency", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

payment_tokens = Table(
    "payment_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_number", Integer, nullable=False, unique=True),  # random 8 digits, carried in pay codes
    Column("device_id", String(64), nullable=False, unique=True),
    Column("user_id", String(32), nullable=False, index=True),  # whose wallet pays (never told to the device)
    Column("key", LargeBinary, nullable=False),  # the device's pay-code key (the hub must recompute codes)
    Column("status", String(16), nullable=False),  # active | suspended
    Column("per_payment_limit", BigInteger, nullable=False),
    Column("daily_limit", BigInteger, nullable=False),
    Column("confirm_above", BigInteger, nullable=False),  # larger payments wait for the person on the device
    Column("failed_confirmations", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

orders = Table(
    "payment_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("merchant_id", String(32), nullable=False),
    Column("out_trade_no", String(64), nullable=False),  # the merchant's own order number
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("description", String(200), nullable=True),
    Column("token_id", String(32), nullable=True),
    Column("user_id", String(32), nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # SUCCESS | USERPAYING | CLOSED | REVOKED
    Column("reason", Text, nullable=True),
    Column("transfer_id", String(64), nullable=True),
    Column("command_id", String(64), nullable=True),  # the confirmation asked of the device
    Column("fee", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "out_trade_no", name="uq_payment_orders_merchant_trade"),
    Index("ix_payment_orders_token_created", "token_id", "created_at"),
    Index("ix_payment_orders_state", "state"),
)

# A pay code's (token, time step, counter) is accepted once; the primary key makes that atomic.
used_pay_codes = Table(
    "used_pay_codes",
    metadata,
    Column("token_number", Integer, primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("counter", Integer, primary_key=True),
    Column("used_at", BigInteger, nullable=False),
)


def public_order(order: dict[str, Any]) -> dict[str, Any]:
    """The order as its merchant sees it: never who paid (no user, no token)."""
    return {k: v for k, v in order.items() if k not in ("user_id", "token_id", "command_id")}
