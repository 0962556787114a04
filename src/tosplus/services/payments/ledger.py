"""A double-entry ledger with TigerBeetle's semantics, on the hub's database (SQLite or PostgreSQL).

- Batches: ``create_transfers`` takes many transfers and writes them in one transaction with their balance
  changes; each gets a result code. A batch is all-or-nothing on disk; within it, each transfer (or linked chain)
  succeeds or fails on its own.
- Idempotency: transfer and account ids are chosen by the client; a retry with the same id and fields answers
  ``exists`` and changes nothing; the same id with other fields is refused.
- Immutability: transfers are never updated or deleted; a pending transfer's fate (posted, voided, expired) is
  kept beside it in ``ledger_pending``.
- The invariant: every transfer adds its amount to one account's debits and another's credits, so the sums of
  debits and credits over all accounts are equal. The batch's changes are summed on both sides before writing,
  and the running totals are checked after every batch; a mismatch stops the batch (LedgerInvariantError).

One process owns the ledger: balances are cached in memory and changed under one lock, so a batch needs no
row locks. Several hub processes must send their payments to that one (as TigerBeetle's clients send to its
cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.services.payments import ledger_store as store
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments.ledger_types import (
    MAX_AMOUNT,
    Account,
    AccountFlags,
    LedgerInvariantError,
    NewAccount,
    NewTransfer,
    Transfer,
    TransferFlags,
)
from tosplus.services.payments.tables_ledger import ledger_accounts, ledger_pending, ledger_transfers

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_LEDGER = re.compile(r"^[A-Z0-9]{1,8}$")
# Flags as plain ints on the hot path: IntFlag's operators run in Python and cost more than the checks they serve.
_LINKED, _PENDING, _POST, _VOID = (
    int(f)
    for f in (TransferFlags.LINKED, TransferFlags.PENDING, TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING)
)
_MODES = _PENDING | _POST | _VOID
_DEBIT_LIMIT = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDIT_LIMIT = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
PENDING, POSTED, VOIDED, EXPIRED = "pending", "posted", "voided", "expired"


@dataclass(slots=True)
class _Pending:
    transfer: Transfer
    status: str
    expires_at: int | None
    resolved_by: str | None = None


@dataclass(slots=True)
class _Batch:
    """What a batch will write, and the state later transfers of the same batch must see.

    Changes go straight in; a linked chain that fails is rolled back from the journal of what it touched, so a
    batch of unlinked transfers costs no copying.
    """

    accounts: dict[str, Account] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    new_transfers: dict[str, Transfer] = field(default_factory=dict)
    new_pending: list[str] = field(default_factory=list)
    resolved_pending: list[str] = field(default_factory=list)
    # the open chain's journal: account -> balances before (None: not in the batch before), pending -> before
    saved_accounts: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict)
    saved_pending: dict[str, _Pending | None] = field(default_factory=dict)
    chain_transfers: list[str] = field(default_factory=list)
    marks: tuple[int, int] = (0, 0)

    def begin_chain(self) -> None:
        self.saved_accounts.clear()
        self.saved_pending.clear()
        self.chain_transfers.clear()
        self.marks = (len(self.new_pending), len(self.resolved_pending))

    def set_pending(self, transfer_id: str, state: _Pending) -> None:
        if transfer_id not in self.saved_pending:
            self.saved_pending[transfer_id] = self.pending.get(transfer_id)
        self.pending[transfer_id] = state

    def roll_back_chain(self) -> None:
        for account_id, saved in self.saved_accounts.items():
            if saved is None:
                del self.accounts[account_id]
            else:
                a = self.accounts[account_id]
                a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted = saved
        for transfer_id, before in self.saved_pending.items():
            if before is None:
                self.pending.pop(transfer_id, None)
            else:
                self.pending[transfer_id] = before
        for transfer_id in self.chain_transfers:
            del self.new_transfers[transfer_id]
        del self.new_pending[self.marks[0] :]
        del self.resolved_pending[self.marks[1] :]


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._accounts: dict[str, Account] = {}
        self._pending: dict[str, _Pending] = {}  # open pending transfers (and those resolved while cached)
        self._lock = asyncio.Lock()
        self.totals = (0, 0, 0, 0)  # debits pending, debits posted, credits pending, credits posted

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            sums = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(ledger_accounts.c.debits_pending), 0),
                        sa.func.coalesce(sa.func.sum(ledger_accounts.c.debits_posted), 0),
                        sa.func.coalesce(sa.func.sum(ledger_accounts.c.credits_pending), 0),
                        sa.func.coalesce(sa.func.sum(ledger_accounts.c.credits_posted), 0),
                    )
                )
            ).one()
            self.totals = (int(sums[0]), int(sums[1]), int(sums[2]), int(sums[3]))
            self._check_totals(self.totals)
            rows = await conn.execute(
                sa.select(ledger_transfers, ledger_pending.c.status, ledger_pending.c.expires_at)
                .join(ledger_pending, ledger_pending.c.transfer_id == ledger_transfers.c.id)
                .where(ledger_pending.c.status == PENDING)
            )
            for row in rows:
                self._pending[row.id] = _Pending(store.transfer_from_row(row), row.status, row.expires_at)

    # -- accounts ---------------------------------------------------------------------------------------------

    async def create_accounts(self, accounts: Sequence[NewAccount]) -> list[str]:
        async with self._lock:
            await self._load_accounts(a.id for a in accounts)
            results: list[str] = []
            new: dict[str, Account] = {}
            for a in accounts:
                known = self._accounts.get(a.id) or new.get(a.id)
                if not _ID.match(a.id):
                    results.append(r.ID_INVALID)
                elif not _LEDGER.match(a.ledger):
                    results.append(r.LEDGER_INVALID)
                elif a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and a.flags & (
                    AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
                ):
                    results.append(r.FLAGS_INVALID)
                elif known is not None:
                    same = (known.ledger, known.code, known.flags, known.user_data) == (
                        a.ledger,
                        a.code,
                        a.flags,
                        a.user_data,
                    )
                    results.append(r.EXISTS if same else r.EXISTS_WITH_DIFFERENT_FIELDS)
                else:
                    new[a.id] = Account(a.id, a.ledger, a.code, int(a.flags), a.user_data, created_at=now_ms())
                    results.append(r.OK)
            if new:
                async with self.engine.begin() as conn:
                    await conn.execute(sa.insert(ledger_accounts), [store.account_row(a) for a in new.values()])
                self._accounts.update(new)
            return results

    async def lookup_accounts(self, ids: Iterable[str]) -> list[Account]:
        """The accounts that exist, as copies (balances as of the last batch)."""
        ids = list(ids)
        async with self._lock:
            await self._load_accounts(ids)
            return [self._accounts[i].copy() for i in ids if i in self._accounts]

    async def _load_accounts(self, ids: Iterable[str]) -> None:
        missing = {i for i in ids if i and i not in self._accounts}
        if not missing:
            return
        async with self.engine.connect() as conn:
            for chunk in store.chunks(sorted(missing), 5000):
                rows = await conn.execute(sa.select(ledger_accounts).where(ledger_accounts.c.id.in_(chunk)))
                for row in rows:
                    self._accounts[row.id] = Account(
                        row.id,
                        row.ledger,
                        row.code,
                        row.flags,
                        row.user_data,
                        row.debits_pending,
                        row.debits_posted,
                        row.credits_pending,
                        row.credits_posted,
                        row.created_at,
                    )

    # -- transfers --------------------------------------------------------------------------------------------

    async def create_transfers(self, transfers: Sequence[NewTransfer]) -> list[str]:
        """Create the transfers in order; one result code each (``ok`` or ``exists`` mean it is recorded)."""
        async with self._lock:
            batch = _Batch()
            results = await self._apply_all(transfers, batch, fresh=False)
            if batch.new_transfers:
                await self._write(batch)
            return results

    async def _apply_all(self, transfers: Sequence[NewTransfer], batch: _Batch, *, fresh: bool) -> list[str]:
        """Apply the transfers (chains all or nothing) onto ``batch``; ``fresh``: their ids were never used
        (derived from a new id), so the database is not asked, and its primary key is the only check."""
        now = now_ms()
        ids = [] if fresh else [t.id for t in transfers if _ID.match(t.id)]
        existing = await store.fetch_transfers(self.engine, ids)
        pending_ids = [t.pending_id for t in transfers if t.pending_id]
        await self._load_pending(pending_ids)
        await self._load_accounts(
            [t.debit_account_id for t in transfers]
            + [t.credit_account_id for t in transfers]
            + [p.transfer.debit_account_id for i in pending_ids if (p := self._pending.get(i))]
            + [p.transfer.credit_account_id for i in pending_ids if (p := self._pending.get(i))]
        )
        results: list[str] = [""] * len(transfers)
        start = 0
        while start < len(transfers):
            end = start
            while end < len(transfers) - 1 and transfers[end].flags & _LINKED:
                end += 1
            self._apply_chain(transfers, start, end, existing, batch, results, now)
            start = end + 1
        return results

    def _apply_chain(
        self,
        transfers: Sequence[NewTransfer],
        start: int,
        end: int,
        existing: dict[str, Transfer],
        batch: _Batch,
        results: list[str],
        now: int,
    ) -> None:
        """Apply transfers[start..end] (a linked chain, or one transfer) all or nothing onto ``batch``."""
        batch.begin_chain()
        failed_at, code = None, r.OK
        if transfers[end].flags & _LINKED:  # the batch ended inside a chain
            failed_at, code = end, r.LINKED_EVENT_CHAIN_OPEN
        else:
            for index in range(start, end + 1):
                code = self._apply(transfers[index], existing, batch, now)
                results[index] = code
                if code not in r.SUCCEEDED:
                    failed_at = index
                    break
        if failed_at is not None:
            batch.roll_back_chain()
            for index in range(start, end + 1):
                results[index] = code if index == failed_at else r.LINKED_EVENT_FAILED

    def _account(self, batch: _Batch, account_id: str) -> Account | None:
        """The batch's working copy of the account, noting in the chain's journal how it was before."""
        account = batch.accounts.get(account_id)
        if account is None:
            cached = self._accounts.get(account_id)
            if cached is None:
                return None
            account = batch.accounts[account_id] = cached.copy()
            batch.saved_accounts.setdefault(account_id, None)
        elif account_id not in batch.saved_accounts:
            batch.saved_accounts[account_id] = (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
            )
        return account

    def _apply(self, t: NewTransfer, existing: dict[str, Transfer], batch: _Batch, now: int) -> str:
        if not _ID.match(t.id):
            return r.ID_INVALID
        known = existing.get(t.id) or batch.new_transfers.get(t.id)
        if known is not None:
            return r.EXISTS if _same(t, known) else r.EXISTS_WITH_DIFFERENT_FIELDS
        mode = int(t.flags) & _MODES
        if mode not in (0, _PENDING, _POST, _VOID):
            return r.FLAGS_INVALID
        if t.timeout_s and mode != _PENDING:
            return r.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if not 0 <= t.timeout_s <= 2**31 - 1 or not 0 <= t.amount <= MAX_AMOUNT:
            return r.AMOUNT_INVALID
        if mode in (_POST, _VOID):
            return self._resolve_pending(t, mode, batch, now)
        if t.pending_id:
            return r.PENDING_ID_MUST_BE_EMPTY
        if t.amount == 0:
            return r.AMOUNT_INVALID
        if t.debit_account_id == t.credit_account_id:
            return r.ACCOUNTS_MUST_BE_DIFFERENT
        if not _LEDGER.match(t.ledger):
            return r.LEDGER_INVALID
        debit, credit = self._account(batch, t.debit_account_id), self._account(batch, t.credit_account_id)
        if debit is None:
            return r.DEBIT_ACCOUNT_NOT_FOUND
        if credit is None:
            return r.CREDIT_ACCOUNT_NOT_FOUND
        if debit.ledger != credit.ledger:
            return r.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if t.ledger != debit.ledger:
            return r.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        amount = t.amount
        if debit.flags & _DEBIT_LIMIT and (debit.debits_pending + debit.debits_posted + amount > debit.credits_posted):
            return r.EXCEEDS_CREDITS
        if credit.flags & _CREDIT_LIMIT and (
            credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
        ):
            return r.EXCEEDS_DEBITS
        if max(debit.debits_pending + debit.debits_posted, credit.credits_pending + credit.credits_posted) > (
            MAX_AMOUNT - amount
        ):
            return r.AMOUNT_INVALID  # would overflow a balance
        record = store.record(t, t.debit_account_id, t.credit_account_id, amount, t.ledger, now)
        if mode == _PENDING:
            debit.debits_pending += amount
            credit.credits_pending += amount
            expires = now + t.timeout_s * 1000 if t.timeout_s else None
            batch.set_pending(t.id, _Pending(record, PENDING, expires))
            batch.new_pending.append(t.id)
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        batch.new_transfers[t.id] = record
        batch.chain_transfers.append(t.id)
        return r.OK

    def _resolve_pending(self, t: NewTransfer, mode: int, batch: _Batch, now: int) -> str:
        if not t.pending_id:
            return r.PENDING_ID_REQUIRED
        pending = batch.pending.get(t.pending_id) or self._pending.get(t.pending_id)
        if pending is None:
            return (
                r.PENDING_TRANSFER_NOT_PENDING if t.pending_id in batch.new_transfers else r.PENDING_TRANSFER_NOT_FOUND
            )
        p = pending.transfer
        if pending.status != PENDING or (pending.expires_at is not None and pending.expires_at <= now):
            return {
                POSTED: r.PENDING_TRANSFER_ALREADY_POSTED,
                VOIDED: r.PENDING_TRANSFER_ALREADY_VOIDED,
            }.get(pending.status, r.PENDING_TRANSFER_EXPIRED)
        if (t.debit_account_id and t.debit_account_id != p.debit_account_id) or (
            t.credit_account_id and t.credit_account_id != p.credit_account_id
        ):
            return r.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS
        if t.ledger and t.ledger != p.ledger:
            return r.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if mode == _POST:
            amount = t.amount or p.amount
            if amount > p.amount:
                return r.EXCEEDS_PENDING_TRANSFER_AMOUNT
        else:
            if t.amount not in (0, p.amount):
                return r.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            amount = p.amount
        debit, credit = self._account(batch, p.debit_account_id), self._account(batch, p.credit_account_id)
        assert debit is not None and credit is not None  # a pending transfer's accounts exist
        debit.debits_pending -= p.amount
        credit.credits_pending -= p.amount
        if mode == _POST:
            debit.debits_posted += amount
            credit.credits_posted += amount
        batch.set_pending(p.id, _Pending(p, POSTED if mode == _POST else VOIDED, None, t.id))
        batch.resolved_pending.append(p.id)
        batch.new_transfers[t.id] = store.record(t, p.debit_account_id, p.credit_account_id, amount, p.ledger, now)
        batch.chain_transfers.append(t.id)
        return r.OK

    async def _load_pending(self, ids: list[str]) -> None:
        """Bring pending transfers that are not cached (resolved ones, or ones from before a restart) in."""
        missing = [i for i in ids if i not in self._pending]
        if not missing:
            return
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    ledger_transfers, ledger_pending.c.status, ledger_pending.c.expires_at, ledger_pending.c.resolved_by
                )
                .join(ledger_pending, ledger_pending.c.transfer_id == ledger_transfers.c.id)
                .where(ledger_transfers.c.id.in_(missing))
            )
            for row in rows:
                self._pending[row.id] = _Pending(
                    store.transfer_from_row(row), row.status, row.expires_at, row.resolved_by
                )

    # -- writing ----------------------------------------------------------------------------------------------

    async def _write(self, batch: _Batch) -> None:
        totals = self._totals_after(batch)
        async with self.engine.begin() as conn:
            await self._write_rows(conn, batch)
        self._remember(batch, totals)

    def _totals_after(self, batch: _Batch) -> tuple[int, int, int, int]:
        """The running totals once ``batch`` is written; LedgerInvariantError if debits and credits would differ."""
        before = [self._accounts[i] for i in batch.accounts]
        delta = [
            sum(a.debits_pending for a in batch.accounts.values()) - sum(a.debits_pending for a in before),
            sum(a.debits_posted for a in batch.accounts.values()) - sum(a.debits_posted for a in before),
            sum(a.credits_pending for a in batch.accounts.values()) - sum(a.credits_pending for a in before),
            sum(a.credits_posted for a in batch.accounts.values()) - sum(a.credits_posted for a in before),
        ]
        totals = (
            self.totals[0] + delta[0],
            self.totals[1] + delta[1],
            self.totals[2] + delta[2],
            self.totals[3] + delta[3],
        )
        self._check_totals(totals)
        return totals

    async def _write_rows(self, conn: AsyncConnection, batch: _Batch) -> None:
        """The batch's rows, in the caller's transaction on ``conn``."""
        if self.postgres:
            # A statement through SQLAlchemy first: it opens the transaction that the driver-level UPDATE and
            # COPY below must be part of; and the commit must wait for the disk whatever the server's default.
            await conn.execute(sa.text("SET LOCAL synchronous_commit = on"))
        await store.write_accounts(conn, list(batch.accounts.values()))
        if batch.new_transfers:
            await store.write_transfers(conn, list(batch.new_transfers.values()))
        if batch.new_pending:
            await conn.execute(
                sa.insert(ledger_pending),
                [
                    {"transfer_id": i, "status": PENDING, "expires_at": batch.pending[i].expires_at}
                    for i in batch.new_pending
                ],
            )
        for pending_id in batch.resolved_pending:
            state = batch.pending[pending_id]
            await conn.execute(
                sa.update(ledger_pending)
                .where(ledger_pending.c.transfer_id == pending_id)
                .values(status=state.status, resolved_by=state.resolved_by)
            )

    def _remember(self, batch: _Batch, totals: tuple[int, int, int, int]) -> None:
        """The batch is committed: the cache takes its balances and pending transfers."""
        self._accounts.update(batch.accounts)
        self._pending.update(batch.pending)
        self.totals = totals

    @contextlib.asynccontextmanager
    async def shared_batch(self) -> AsyncIterator[SharedBatch]:
        """A batch written in another service's transaction, so that money moves with that service's rows
        (orders, keys, outbox) in one commit. The ledger stays locked until the block ends::

            async with ledger.shared_batch() as batch:
                results = await batch.apply(transfers, fresh=True)
                async with engine.begin() as conn:
                    ...  # the service's own rows
                    await batch.write(conn)
                batch.committed()

        Nothing reaches the cache unless ``committed()`` is called after the transaction committed.
        """
        async with self._lock:
            yield SharedBatch(self)

    @staticmethod
    def _check_totals(totals: tuple[int, int, int, int]) -> None:
        if totals[0] != totals[2] or totals[1] != totals[3]:
            raise LedgerInvariantError(
                f"debits and credits differ: pending {totals[0]} vs {totals[2]}, posted {totals[1]} vs {totals[3]}"
            )

    # -- expiry and reading -----------------------------------------------------------------------------------

    async def expire_pending(self, now: int | None = None) -> int:
        """Release pending transfers whose timeout has passed; how many."""
        now = now_ms() if now is None else now
        async with self._lock:
            due = [
                p
                for p in self._pending.values()
                if p.status == PENDING and p.expires_at is not None and p.expires_at <= now
            ]
            if not due:
                return 0
            batch = _Batch()
            await self._load_accounts(
                [a for p in due for a in (p.transfer.debit_account_id, p.transfer.credit_account_id)]
            )
            for p in due:
                debit = self._account(batch, p.transfer.debit_account_id)
                credit = self._account(batch, p.transfer.credit_account_id)
                assert debit is not None and credit is not None
                debit.debits_pending -= p.transfer.amount
                credit.credits_pending -= p.transfer.amount
                batch.set_pending(p.transfer.id, _Pending(p.transfer, EXPIRED, p.expires_at))
                batch.resolved_pending.append(p.transfer.id)
            await self._write(batch)
            for p in due:  # resolved: no need to keep them in memory
                self._pending.pop(p.transfer.id, None)
            return len(due)

    async def lookup_transfers(self, ids: Sequence[str]) -> list[Transfer]:
        found = await store.fetch_transfers(self.engine, list(ids))
        return [found[i] for i in ids if i in found]

    async def pending_status(self, transfer_id: str) -> str | None:
        """pending, posted, voided or expired; None when it is not a pending transfer."""
        return await store.pending_status(self.engine, transfer_id)

    async def account_transfers(self, account_id: str, limit: int = 100, before: int | None = None) -> list[Transfer]:
        """The account's transfers, newest first (``before``: created_at of the last one of the previous page)."""
        return await store.account_transfers(self.engine, account_id, limit, before)


class SharedBatch:
    """A ledger batch that another service writes in its own transaction (see :meth:`Ledger.shared_batch`)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._batch = _Batch()
        self._totals: tuple[int, int, int, int] | None = None

    async def load_accounts(self, ids: Iterable[str]) -> None:
        """Bring these accounts into the cache now (a read), so that :meth:`apply` needs no database."""
        await self._ledger._load_accounts(ids)

    async def apply(self, transfers: Sequence[NewTransfer], *, fresh: bool = False) -> list[str]:
        """Apply ``transfers`` after those applied before; results as :meth:`Ledger.create_transfers` gives."""
        return await self._ledger._apply_all(transfers, self._batch, fresh=fresh)

    async def write(self, conn: AsyncConnection) -> None:
        """Write what was applied, in the caller's transaction (checks the invariant first)."""
        if self._batch.new_transfers:
            self._totals = self._ledger._totals_after(self._batch)
            await self._ledger._write_rows(conn, self._batch)

    def committed(self) -> None:
        """The caller's transaction committed: the ledger's cache takes the batch."""
        if self._totals is not None:
            self._ledger._remember(self._batch, self._totals)
            self._totals = None


def _same(t: NewTransfer, known: Transfer) -> bool:
    """A retry: every field the request gives equals the recorded one (empty ones were taken from the pending)."""
    return (
        (not t.debit_account_id or t.debit_account_id == known.debit_account_id)
        and (not t.credit_account_id or t.credit_account_id == known.credit_account_id)
        and (t.amount == known.amount or (t.amount == 0 and known.flags & _MODES in (_POST, _VOID)))
        and (not t.ledger or t.ledger == known.ledger)
        and (t.pending_id or None) == known.pending_id
        and (t.code, t.flags, t.timeout_s, t.user_data) == (known.code, known.flags, known.timeout_s, known.user_data)
    )
