"""Ledger throughput: transfers/s posted in batches, durable, against the raw database's insert rate.

Wallets (debits must not exceed credits) are funded, then pay merchants in batches of 8,190 transfers (as
TigerBeetle batches them); every batch is one committed transaction (PostgreSQL with synchronous_commit on).
The reference in the same run is the database alone: the same rows COPYed (PostgreSQL) or inserted (SQLite)
into a plain table of the same shape, one transaction per batch, with no ledger logic. Afterwards the ledger is
verified from the database (no money created or lost).

    python bench/ledger.py                      # PostgreSQL
    python bench/ledger.py --db sqlite
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, postgres_database
from tosplus.config import normalise_database_url
from tosplus.services.payments.ledger import Ledger
from tosplus.services.payments.ledger_types import OK, AccountFlags, NewAccount, NewTransfer
from tosplus.services.payments.ledger_verify import verify
from tosplus.storage.engine import open_database

console = Console()
BATCH = 8190


async def _raw_rate(engine: sa.ext.asyncio.AsyncEngine, batches: list[list[tuple[object, ...]]]) -> float:
    """Rows/s the database takes for the same rows with no ledger around them (one transaction per batch)."""
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:  # the same columns, key and indexes
        if postgres:
            await conn.execute(sa.text("CREATE TABLE raw_transfers (LIKE ledger_transfers INCLUDING ALL)"))
        else:
            await conn.execute(sa.text("CREATE TABLE raw_transfers AS SELECT * FROM ledger_transfers WHERE 0"))
            await conn.execute(sa.text("CREATE UNIQUE INDEX raw_id ON raw_transfers (id)"))
            await conn.execute(sa.text("CREATE INDEX raw_debit ON raw_transfers (debit_account_id, created_at)"))
            await conn.execute(sa.text("CREATE INDEX raw_credit ON raw_transfers (credit_account_id, created_at)"))
    started = time.perf_counter()
    for rows in batches:
        async with engine.begin() as conn:
            if postgres:
                await conn.execute(sa.text("SET LOCAL synchronous_commit = on"))
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None
                await raw.driver_connection.copy_records_to_table("raw_transfers", records=rows)
            else:
                await conn.execute(
                    sa.text("INSERT INTO raw_transfers VALUES (:a, :b, :c, :d, :e, :f, :g, :h, :i, :j, :k)"),
                    [dict(zip("abcdefghijk", row, strict=True)) for row in rows],
                )
    elapsed = time.perf_counter() - started
    return sum(len(b) for b in batches) / elapsed


async def run(db: str, url: str, transfers: int, wallets: int, merchants: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_database(normalise_database_url(url))
        stack.push_async_callback(engine.dispose)
        ledger = Ledger(engine)
        await ledger.load()
        accounts = [NewAccount("bank", "CNY", 4)]
        accounts += [NewAccount(f"w{i}", "CNY", 1, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) for i in range(wallets)]
        accounts += [NewAccount(f"m{i}", "CNY", 2) for i in range(merchants)]
        assert set(await ledger.create_accounts(accounts)) == {OK}
        funding = [NewTransfer(f"fund-{i}", "bank", f"w{i}", 10_000_000, "CNY", 1) for i in range(wallets)]
        for i in range(0, len(funding), BATCH):
            assert set(await ledger.create_transfers(funding[i : i + BATCH])) == {OK}
        payments = [
            NewTransfer(f"pay-{n}", f"w{n % wallets}", f"m{(n * 7) % merchants}", 100 + n % 900, "CNY", 1)
            for n in range(transfers)
        ]
        batches = [payments[i : i + BATCH] for i in range(0, len(payments), BATCH)]
        with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"ledger batches ({db})", total=len(payments))
            started = time.perf_counter()
            for batch in batches:
                results = await ledger.create_transfers(batch)
                assert all(res == OK for res in results), {res for res in results if res != OK}
                progress.advance(task, len(batch))
            ledger_s = time.perf_counter() - started
        rows = [
            [
                (f"raw-{t.id}", t.debit_account_id, t.credit_account_id, t.amount, None, "CNY", 1, 0, 0, None, 0)
                for t in batch
            ]
            for batch in batches
        ]
        with console.status("the same rows into the database alone…"):
            raw_rate = await _raw_rate(engine, rows)
        with console.status("verifying the ledger from the database…"):
            report = await verify(engine)
        rate = transfers / ledger_s
        table = Table(title=f"Ledger, {db}: {transfers:,} transfers in batches of {BATCH:,} ({machine()})")
        for column in ("what", "rows/s", "ratio"):
            table.add_column(column, justify="right" if column != "what" else "left")
        table.add_row("ledger create_transfers (checked, balances, durable)", f"{rate:,.0f}", f"{rate / raw_rate:.0%}")
        table.add_row("raw insert of the same rows (reference)", f"{raw_rate:,.0f}", "100%")
        console.print(table)
        console.print(
            f"verify: {report.accounts:,} accounts, {report.transfers:,} transfers, "
            + ("[green]balanced[/green]" if report.ok else f"[red]{report.problems[:3]}[/red]")
        )
        if not report.ok:
            raise typer.Exit(1)


def main(
    db: str = typer.Option("postgresql", help="postgresql or sqlite"),
    transfers: int = typer.Option(500_000, help="payments to post"),
    wallets: int = typer.Option(20_000),
    merchants: int = typer.Option(500),
) -> None:
    with contextlib.ExitStack() as stack:
        if db == "postgresql":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(stack.enter_context(tempfile.TemporaryDirectory())) / 'ledger.db'}"
        asyncio.run(run(db, url, transfers, wallets, merchants))


if __name__ == "__main__":
    typer.run(main)
