"""The withdrawals table: what a merchant asked to be paid out to its bank. The money itself is only in the ledger.

A row is written (``PROCESSING``) before money moves and marked ``SUCCEEDED`` with the ``payout.paid`` event in
one transaction after; the ledger transfer is named after the row (``payout:<id>``), so a row left
``PROCESSING`` by a crash is settled by looking it up (services/payments/withdrawals.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from tosplus.storage.tables import metadata

withdrawals = Table(
    "merchant_withdrawals",
    metadata,
    Column("id", String(32), primary_key=True),  # wdr_<24 hex>, derived from the request's Idempotency-Key
    Column("merchant_id", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("bank_account", String(32), nullable=False),  # masked: only the last four digits are kept
    Column("state", String(16), nullable=False),  # PROCESSING | SUCCEEDED
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_merchant_withdrawals_merchant", "merchant_id", "created_at"),
    Index("ix_merchant_withdrawals_state", "state"),
)
