"""The refunds table: what a merchant asked to refund and why. The money itself is only in the ledger.

A row is written (``PROCESSING``) before money moves and marked ``SUCCEEDED`` with the ``refund.succeeded``
event in one transaction after; the ledger's transfers are named after the row (``refund:<id>``,
``refee:<id>``), so a row left ``PROCESSING`` by a crash is settled by looking them up. The ledger, not this
table, says how much of an order was refunded.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, UniqueConstraint

from tosplus.storage.tables import metadata

refunds = Table(
    "payment_refunds",
    metadata,
    Column("id", String(32), primary_key=True),  # rfd_<16 hex>
    Column("merchant_id", String(32), nullable=False),
    Column("order_id", String(32), nullable=False),
    Column("out_trade_no", String(64), nullable=False),  # the order's number at the merchant (kept for listing)
    Column("out_refund_no", String(64), nullable=False),  # the merchant's own refund number: one refund each
    Column("amount", BigInteger, nullable=False),  # paid back to the wallet
    Column("fee_refund", BigInteger, nullable=False),  # the platform's fee given back to the merchant
    Column("currency", String(8), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("state", String(16), nullable=False),  # PROCESSING | SUCCEEDED
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "out_refund_no", name="uq_payment_refunds_merchant_refund_no"),
    Index("ix_payment_refunds_order", "order_id", "created_at"),
    Index("ix_payment_refunds_state", "state"),
)
