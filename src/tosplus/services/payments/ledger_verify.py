"""Checking the ledger from the database alone (``tosplus payments verify``): no money created or lost.

- total debits equal total credits, pending and posted;
- every account's four balances equal the sums of its transfers (posted: plain transfers and posts; pending:
  pending transfers still open);
- no wallet holds less than nothing, no funding account paid out more than it took in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.services.payments.ledger_types import AccountFlags, TransferFlags
from tosplus.services.payments.tables_ledger import ledger_accounts, ledger_pending, ledger_transfers

_NOT_POSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


@dataclass
class Report:
    accounts: int = 0
    transfers: int = 0
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(engine: AsyncEngine, max_problems: int = 100) -> Report:
    t, p, a = ledger_transfers, ledger_pending, ledger_accounts
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # dp, dpo, cp, cpo from transfers
    report = Report()
    async with engine.connect() as conn:
        report.transfers = int((await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar() or 0)
        posted = t.c.flags.op("&")(_NOT_POSTED) == 0
        for side, column in ((1, t.c.debit_account_id), (3, t.c.credit_account_id)):
            rows = await conn.execute(sa.select(column, sa.func.sum(t.c.amount)).where(posted).group_by(column))
            for account_id, amount in rows:
                sums[account_id][side] += int(amount)
            open_pending = (
                sa.select(column, sa.func.sum(t.c.amount))
                .join(p, p.c.transfer_id == t.c.id)
                .where(p.c.status == "pending")
                .group_by(column)
            )
            for account_id, amount in await conn.execute(open_pending):
                sums[account_id][side - 1] += int(amount)
        accounts = await conn.execute(sa.select(a))
        for row in accounts:
            report.accounts += 1
            stored = [row.debits_pending, row.debits_posted, row.credits_pending, row.credits_posted]
            report.debits_pending += row.debits_pending
            report.debits_posted += row.debits_posted
            report.credits_pending += row.credits_pending
            report.credits_posted += row.credits_posted
            expected = sums.pop(row.id, [0, 0, 0, 0])
            if stored != expected:
                report.problems.append(
                    f"account {row.id}: balances {stored} but its transfers sum to {expected} "
                    "(debits pending, debits posted, credits pending, credits posted)"
                )
            if row.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
                row.debits_pending + row.debits_posted > row.credits_posted
            ):
                report.problems.append(f"account {row.id}: debits exceed credits")
            if row.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
                row.credits_pending + row.credits_posted > row.debits_posted
            ):
                report.problems.append(f"account {row.id}: credits exceed debits")
            if len(report.problems) >= max_problems:
                break
    for account_id in sums:
        report.problems.append(f"transfers name account {account_id}, which does not exist")
    if report.debits_posted != report.credits_posted or report.debits_pending != report.credits_pending:
        report.problems.append(
            f"total debits and credits differ: posted {report.debits_posted} vs {report.credits_posted}, "
            f"pending {report.debits_pending} vs {report.credits_pending}"
        )
    return report
