"""The ledger: TigerBeetle's semantics, on SQLite and PostgreSQL, with property-based checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.payments.ledger_support import assert_consistent, fresh_ledger
from tosplus.services.payments import ledger_types as r
from tosplus.services.payments.ledger_types import AccountFlags as AF
from tosplus.services.payments.ledger_types import NewAccount, NewTransfer
from tosplus.services.payments.ledger_types import TransferFlags as TF

WALLET = NewAccount("wallet-1", "CNY", 1, AF.DEBITS_MUST_NOT_EXCEED_CREDITS)
SHOP = NewAccount("shop-1", "CNY", 2)
BANK = NewAccount("bank", "CNY", 4)


def tx(id: str, debit: str, credit: str, amount: int, flags: int = 0, **kw: object) -> NewTransfer:
    return NewTransfer(id, debit, credit, amount, "CNY", 1, flags, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_transfers_balances_and_idempotent_retries(kind: str, tmp_path: Path) -> None:
    async with fresh_ledger(kind, tmp_path) as ledger:
        assert await ledger.create_accounts([WALLET, SHOP, BANK]) == [r.OK] * 3
        assert await ledger.create_accounts([WALLET, NewAccount("shop-1", "USD", 2)]) == [
            r.EXISTS,
            r.EXISTS_WITH_DIFFERENT_FIELDS,
        ]
        results = await ledger.create_transfers(
            [
                tx("top-up-1", "bank", "wallet-1", 10_000),
                tx("pay-1", "wallet-1", "shop-1", 2_550),
                tx("pay-2", "wallet-1", "shop-1", 9_000),  # more than is left
                tx("pay-1", "wallet-1", "shop-1", 2_550),  # a retry inside the batch
                tx("pay-1", "wallet-1", "shop-1", 2_551),
                tx("self", "shop-1", "shop-1", 1),
                tx("zero", "bank", "shop-1", 0),
                tx("nowhere", "bank", "ghost", 5),
                NewTransfer("usd", "bank", "shop-1", 5, "USD", 1),
            ]
        )
        assert results == [
            r.OK,
            r.OK,
            r.EXCEEDS_CREDITS,
            r.EXISTS,
            r.EXISTS_WITH_DIFFERENT_FIELDS,
            r.ACCOUNTS_MUST_BE_DIFFERENT,
            r.AMOUNT_INVALID,
            r.CREDIT_ACCOUNT_NOT_FOUND,
            r.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        ]
        # A retry in a later batch (after a timeout, say) does nothing again.
        assert await ledger.create_transfers([tx("pay-1", "wallet-1", "shop-1", 2_550)]) == [r.EXISTS]
        wallet, shop, bank = await ledger.lookup_accounts(["wallet-1", "shop-1", "bank"])
        assert (wallet.balance, wallet.available, shop.balance, bank.balance) == (7_450, 7_450, 2_550, -10_000)
        history = await ledger.account_transfers("wallet-1")
        assert [t.id for t in history] in (["pay-1", "top-up-1"], ["top-up-1", "pay-1"])
        await assert_consistent(ledger)


async def test_pending_post_void_and_expiry(kind: str, tmp_path: Path) -> None:
    async with fresh_ledger(kind, tmp_path) as ledger:
        await ledger.create_accounts([WALLET, SHOP, BANK])
        await ledger.create_transfers([tx("top-up", "bank", "wallet-1", 10_000)])
        results = await ledger.create_transfers(
            [
                tx("hold-1", "wallet-1", "shop-1", 6_000, TF.PENDING),
                tx("hold-2", "wallet-1", "shop-1", 5_000, TF.PENDING),  # 6,000 are reserved
                tx("hold-3", "wallet-1", "shop-1", 3_000, TF.PENDING, timeout_s=1),
                tx("late", "wallet-1", "shop-1", 1, timeout_s=5),
            ]
        )
        assert results == [r.OK, r.EXCEEDS_CREDITS, r.OK, r.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER]
        (wallet,) = await ledger.lookup_accounts(["wallet-1"])
        assert (wallet.balance, wallet.available, wallet.debits_pending) == (10_000, 1_000, 9_000)
        posted = await ledger.create_transfers(
            [
                tx("post-1", "", "", 7_000, TF.POST_PENDING, pending_id="hold-1"),  # more than held
                tx("post-1b", "", "", 4_500, TF.POST_PENDING, pending_id="hold-1"),  # part of it
                tx("post-1c", "", "", 0, TF.POST_PENDING, pending_id="hold-1"),
                tx("void-x", "", "", 0, TF.VOID_PENDING, pending_id="missing"),
                tx("void-top", "", "", 0, TF.VOID_PENDING, pending_id="top-up"),
            ]
        )
        assert posted == [
            r.EXCEEDS_PENDING_TRANSFER_AMOUNT,
            r.OK,
            r.PENDING_TRANSFER_ALREADY_POSTED,
            r.PENDING_TRANSFER_NOT_FOUND,
            r.PENDING_TRANSFER_NOT_FOUND,
        ]
        (wallet, shop) = await ledger.lookup_accounts(["wallet-1", "shop-1"])
        assert (wallet.balance, wallet.debits_pending, shop.balance) == (5_500, 3_000, 4_500)
        await asyncio.sleep(1.1)
        late = await ledger.create_transfers([tx("post-3", "", "", 0, TF.POST_PENDING, pending_id="hold-3")])
        assert late == [r.PENDING_TRANSFER_EXPIRED]
        assert await ledger.expire_pending() == 1
        assert await ledger.pending_status("hold-3") == "expired"
        (wallet,) = await ledger.lookup_accounts(["wallet-1"])
        assert (wallet.balance, wallet.available) == (5_500, 5_500)
        # A pending transfer that outlives a restart can still be voided.
        await ledger.create_transfers([tx("hold-4", "wallet-1", "shop-1", 500, TF.PENDING)])
        await assert_consistent(ledger)
        from tosplus.services.payments.ledger import Ledger

        restarted = Ledger(ledger.engine)
        await restarted.load()
        assert await restarted.create_transfers([tx("void-4", "", "", 0, TF.VOID_PENDING, pending_id="hold-4")]) == [
            r.OK
        ]
        assert await restarted.create_transfers([tx("void-4b", "", "", 0, TF.VOID_PENDING, pending_id="hold-4")]) == [
            r.PENDING_TRANSFER_ALREADY_VOIDED
        ]
        await assert_consistent(restarted)


async def test_linked_transfers_succeed_or_fail_together(kind: str, tmp_path: Path) -> None:
    async with fresh_ledger(kind, tmp_path) as ledger:
        await ledger.create_accounts([WALLET, SHOP, BANK, NewAccount("fee", "CNY", 3)])
        await ledger.create_transfers([tx("top-up", "bank", "wallet-1", 1_000)])
        results = await ledger.create_transfers(
            [
                tx("a1", "wallet-1", "shop-1", 600, TF.LINKED),
                tx("a2", "wallet-1", "fee", 600),  # the chain's second leg overdraws: both fail
                tx("b1", "wallet-1", "shop-1", 900, TF.LINKED),
                tx("b2", "shop-1", "fee", 9),
                tx("c1", "wallet-1", "shop-1", 1, TF.LINKED),  # the batch ends inside a chain
            ]
        )
        assert results == [r.LINKED_EVENT_FAILED, r.EXCEEDS_CREDITS, r.OK, r.OK, r.LINKED_EVENT_CHAIN_OPEN]
        wallet, shop, fee = await ledger.lookup_accounts(["wallet-1", "shop-1", "fee"])
        assert (wallet.balance, shop.balance, fee.balance) == (100, 891, 9)
        assert await ledger.lookup_transfers(["a1", "a2", "c1"]) == []
        await assert_consistent(ledger)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["top-up", "pay", "hold", "post", "void", "retry", "chain"]),
        st.integers(0, 3),  # which wallet / pending
        st.integers(0, 3),  # which shop
        st.integers(1, 5_000),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_ops, min_size=1, max_size=5))
async def test_random_batches_never_create_or_lose_money(tmp_path_factory: pytest.TempPathFactory, batches) -> None:  # type: ignore[no-untyped-def]
    async with fresh_ledger("sqlite", tmp_path_factory.mktemp("ledger")) as ledger:
        wallets = [NewAccount(f"w{i}", "CNY", 1, AF.DEBITS_MUST_NOT_EXCEED_CREDITS) for i in range(4)]
        shops = [NewAccount(f"s{i}", "CNY", 2) for i in range(4)]
        await ledger.create_accounts([*wallets, *shops, BANK])
        n, holds, sent = 0, [], []  # sent: transfers the ledger recorded (retried verbatim later)
        for ops in batches:
            batch = []
            for op, i, j, amount in ops:
                n += 1
                if op == "top-up":
                    batch.append(tx(f"t{n}", "bank", f"w{i}", amount))
                elif op == "pay":
                    batch.append(tx(f"t{n}", f"w{i}", f"s{j}", amount))
                elif op == "hold":
                    batch.append(tx(f"t{n}", f"w{i}", f"s{j}", amount, TF.PENDING))
                    holds.append(f"t{n}")
                elif op in ("post", "void") and holds:
                    flag = TF.POST_PENDING if op == "post" else TF.VOID_PENDING
                    part = amount if op == "post" and amount % 2 else 0
                    batch.append(tx(f"t{n}", "", "", part, flag, pending_id=holds[i % len(holds)]))
                elif op == "retry" and sent:
                    batch.append(sent[i % len(sent)])
                elif op == "chain":
                    batch.append(tx(f"t{n}a", f"w{i}", f"s{j}", amount, TF.LINKED))
                    batch.append(tx(f"t{n}b", f"s{j}", f"w{(i + 1) % 4}", amount // 2 + 1))
            recorded_before = set(sent)
            results = await ledger.create_transfers(batch)
            assert len(results) == len(batch)
            for t, res in zip(batch, results, strict=True):
                if t in recorded_before:
                    assert res == r.EXISTS, f"a retry of a recorded transfer answered {res}"
            # Retried later on their own: a linked leg alone would be an open chain, refused as such.
            sent += [t for t, res in zip(batch, results, strict=True) if res == r.OK and not t.flags & TF.LINKED]
            for account in await ledger.lookup_accounts([w.id for w in wallets]):
                assert account.available >= 0
        await assert_consistent(ledger)


async def test_operators_verify_command_finds_a_tampered_balance(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import sqlalchemy as sa

    from tosplus.services.payments.ledger import Ledger
    from tosplus.storage.engine import open_database

    engine = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'tosplus.db'}")
    try:
        ledger = Ledger(engine)
        await ledger.load()
        await ledger.create_accounts([WALLET, SHOP, BANK])
        await ledger.create_transfers([tx("t1", "bank", "wallet-1", 500), tx("t2", "wallet-1", "shop-1", 200)])
    finally:
        await engine.dispose()
    env = {**os.environ, "TOSPLUS_DATA_DIR": str(tmp_path)}
    env.pop("TOSPLUS_DATABASE_URL", None)
    command = [sys.executable, "-m", "tosplus", "payments", "verify"]
    good = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "balanced" in good.stdout and "700" in good.stdout
    engine = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'tosplus.db'}")
    async with engine.begin() as conn:  # someone edits a balance behind the ledger's back
        await conn.execute(sa.text("UPDATE ledger_accounts SET credits_posted = 900 WHERE id = 'shop-1'"))
    await engine.dispose()
    bad = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "account shop-1" in bad.stdout and "total debits and credits differ" in bad.stdout
