"""The ledger's reads and writes of the database: rows in, rows out, fast paths for PostgreSQL.

Kept apart from ``ledger.py``, which decides what a batch does; this module only knows how to store it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.services.payments.ledger_types import Account, NewTransfer, Transfer
from tosplus.services.payments.tables_ledger import ledger_accounts, ledger_pending, ledger_transfers

TRANSFER_COLUMNS = Transfer._fields  # the table's column order: a Transfer is the row as it is


async def fetch_transfers(engine: AsyncEngine, ids: list[str]) -> dict[str, Transfer]:
    """The recorded transfers among ``ids``."""
    found: dict[str, Transfer] = {}
    if not ids:
        return found
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":  # one array parameter: no statement of 8,000 placeholders
            raw = await conn.get_raw_connection()
            assert raw.driver_connection is not None
            rows = await raw.driver_connection.fetch(
                f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM ledger_transfers WHERE id = ANY($1::text[])", ids
            )
            return {row["id"]: Transfer(*row) for row in rows}
        for chunk in chunks(ids, 5000):
            for row in await conn.execute(sa.select(ledger_transfers).where(ledger_transfers.c.id.in_(chunk))):
                found[row.id] = transfer_from_row(row)
    return found


async def write_accounts(conn: AsyncConnection, accounts: list[Account]) -> None:
    """Store the accounts' four balances (inside the caller's transaction)."""
    accounts.sort(key=lambda a: a.id)  # one lock order, should another writer ever share the table
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute(
            "UPDATE ledger_accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
            "credits_pending = v.cp, credits_posted = v.cpo "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "
            "AS v(id, dp, dpo, cp, cpo) WHERE a.id = v.id",
            [a.id for a in accounts],
            [a.debits_pending for a in accounts],
            [a.debits_posted for a in accounts],
            [a.credits_pending for a in accounts],
            [a.credits_posted for a in accounts],
        )
        return
    await conn.execute(
        sa.update(ledger_accounts)
        .where(ledger_accounts.c.id == sa.bindparam("_id"))
        .values(
            debits_pending=sa.bindparam("dp"),
            debits_posted=sa.bindparam("dpo"),
            credits_pending=sa.bindparam("cp"),
            credits_posted=sa.bindparam("cpo"),
        ),
        [
            {
                "_id": a.id,
                "dp": a.debits_pending,
                "dpo": a.debits_posted,
                "cp": a.credits_pending,
                "cpo": a.credits_posted,
            }
            for a in accounts
        ],
    )


async def write_transfers(conn: AsyncConnection, records: list[Transfer]) -> None:
    """Append the transfers (inside the caller's transaction, which a statement must already have opened)."""
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None and driver.is_in_transaction()
        await driver.copy_records_to_table("ledger_transfers", records=records, columns=list(TRANSFER_COLUMNS))
        return
    await conn.execute(sa.insert(ledger_transfers), [t._asdict() for t in records])


async def pending_status(engine: AsyncEngine, transfer_id: str) -> str | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(ledger_pending.c.status).where(ledger_pending.c.transfer_id == transfer_id))
        ).scalar()


async def account_transfers(engine: AsyncEngine, account_id: str, limit: int, before: int | None) -> list[Transfer]:
    t = ledger_transfers
    query = (
        sa.select(t)
        .where(sa.or_(t.c.debit_account_id == account_id, t.c.credit_account_id == account_id))
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(t.c.created_at < before)
    async with engine.connect() as conn:
        return [transfer_from_row(row) for row in await conn.execute(query)]


def record(t: NewTransfer, debit: str, credit: str, amount: int, ledger: str, now: int) -> Transfer:
    return Transfer(
        t.id, debit, credit, amount, t.pending_id, ledger, t.code, int(t.flags), t.timeout_s, t.user_data, now
    )


def transfer_from_row(row: Any) -> Transfer:
    return Transfer(*(getattr(row, column) for column in TRANSFER_COLUMNS))


def account_row(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "ledger": a.ledger,
        "code": a.code,
        "flags": a.flags,
        "user_data": a.user_data,
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": 0,
        "created_at": a.created_at,
    }


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
