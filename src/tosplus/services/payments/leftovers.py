"""Rows a crash left ``PROCESSING``: refunds and withdrawals write their row first, then move the money with a
transfer whose id derives from the row's id, then mark the row done. A row still ``PROCESSING`` when nothing is
under way is a leftover: the ledger says whether its money moved (finish the row) or not (forget the row)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.services.payments.ledger import Ledger

PROCESSING = "PROCESSING"


async def settle(
    engine: AsyncEngine,
    ledger: Ledger,
    table: sa.Table,
    transfer_id: Callable[[str], str],
    succeeded: Callable[[dict[str, Any]], Awaitable[Any]],
    *where: sa.ColumnElement[bool],
) -> int:
    """Settle the table's ``PROCESSING`` rows (also matching ``where``): ``succeeded(row)`` if the ledger has
    ``transfer_id(row id)``, the row deleted otherwise (nothing moved). Call it only when no such action is
    under way (under the action's lock). How many rows there were."""
    query = sa.select(table).where(table.c.state == PROCESSING, *where)
    async with engine.connect() as conn:
        stuck = [dict(row._mapping) for row in await conn.execute(query)]
    for row in stuck:
        if await ledger.lookup_transfers([transfer_id(row["id"])]):
            await succeeded(row)
        else:
            async with engine.begin() as conn:
                await conn.execute(sa.delete(table).where(table.c.id == row["id"], table.c.state == PROCESSING))
    return len(stuck)
