"""The ledger's tables: accounts with their four balances, immutable transfers, and the state of pending ones.

Amounts are integers in minor units (fen for CNY); BigInteger holds up to 2^63-1.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from tosplus.storage.tables import metadata

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("ledger", String(8), nullable=False),  # the currency: CNY, USD ...
    Column("code", Integer, nullable=False),  # what kind of account: wallet, merchant, fee, funding ...
    Column("flags", Integer, nullable=False),
    Column("user_data", String(128), nullable=True),  # whose it is (a user id, a merchant id)
    Column("debits_pending", BigInteger, nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Never updated, never deleted: mistakes are corrected by new transfers.
ledger_transfers = Table(
    "ledger_transfers",
    metadata,
    Column("id", String(64), primary_key=True),  # chosen by the client: a retry with the same id is idempotent
    Column("debit_account_id", String(64), nullable=False),
    Column("credit_account_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("pending_id", String(64), nullable=True),
    Column("ledger", String(8), nullable=False),
    Column("code", Integer, nullable=False),
    Column("flags", Integer, nullable=False),
    Column("timeout_s", Integer, nullable=False),
    Column("user_data", String(128), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ledger_transfers_debit", "debit_account_id", "created_at"),
    Index("ix_ledger_transfers_credit", "credit_account_id", "created_at"),
)

# What became of each pending transfer: pending, posted, voided or expired (the transfer itself stays as it was).
ledger_pending = Table(
    "ledger_pending",
    metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("status", String(8), nullable=False),
    Column("expires_at", BigInteger, nullable=True),  # ms; NULL: never
    Column("resolved_by", String(64), nullable=True),  # the post or void transfer
    Index("ix_ledger_pending_status", "status", "expires_at"),
)
