"""Ledgers on a fresh database, and the check that balances equal the sums of their transfers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa

from tests.support.hubs import postgres_database
from tosplus.services.payments.ledger import Ledger
from tosplus.services.payments.ledger_verify import verify
from tosplus.storage.engine import open_database


@contextlib.asynccontextmanager
async def fresh_ledger(kind: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    """A loaded ledger on a new SQLite file or a new PostgreSQL database (schema by the hub's migrations)."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        engine = await open_database(url)
        stack.push_async_callback(engine.dispose)
        ledger = Ledger(engine)
        await ledger.load()
        yield ledger


async def assert_consistent(ledger: Ledger) -> None:
    report = await verify(ledger.engine)
    assert report.ok, report.problems
    fresh = Ledger(ledger.engine)
    await fresh.load()  # what a restarted hub would see
    assert fresh.totals == ledger.totals
    async with ledger.engine.connect() as conn:
        count = (await conn.execute(sa.text("SELECT count(*) FROM ledger_accounts"))).scalar()
    assert count == report.accounts
