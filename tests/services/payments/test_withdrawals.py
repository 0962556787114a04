"""Merchants' withdrawals to their bank end to end: never more than the available balance (also when two race,
and against refunds), idempotent by key, in the daily statement that still reconciles with the ledger, settled
after a crash, and announced to the merchant's webhook."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.receiver import Receiver
from tests.services.payments.test_counter import Shop, key, open_shop, pay
from tests.support.hubs import HubUnderTest, postgres_database, running_hub
from tosplus.services.payments.ledger_types import NewTransfer
from tosplus.services.payments.service import PAYOUT_ACCOUNT, WITHDRAWAL
from tosplus.services.payments.tables_withdrawals import withdrawals as withdrawals_table
from tosplus.services.payments.withdrawals import Withdrawals

BANK = "6222 0212 3456 7894"  # a bank card number with a valid check digit


async def withdraw(shop: Shop, amount: int, bank: str = BANK, **headers: str) -> httpx.Response:
    body = {"amount": amount, "bank_account": bank}
    return await shop.api.post("/api/v1/merchant/withdrawals", json=body, headers={**key(), **headers})


async def balance(hub: HubUnderTest, account: str) -> int:
    (found,) = await hub.hub.payments.ledger.lookup_accounts([account])
    return int(found.balance)


async def test_withdrawals_never_exceed_the_available_balance(any_hub: HubUnderTest) -> None:
    hub = any_hub
    shop = await open_shop(hub, top_up=200_00)
    merchant_account = shop.merchant["account"]
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        assert (await pay(shop, 100_00, "P-1")).json()["fee"] == 60
        assert await balance(hub, merchant_account) == 99_40

        too_much = await withdraw(shop, 99_41)
        assert too_much.status_code == 409 and "more than the merchant's available balance" in too_much.text
        assert (await withdraw(shop, 10_00, "1234 5678 9012 3456")).status_code == 422  # wrong check digit
        assert (await withdraw(shop, 0)).status_code == 422
        no_key = await shop.api.post("/api/v1/merchant/withdrawals", json={"amount": 1_00, "bank_account": BANK})
        assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]

        first = await withdraw(shop, 50_00, **{"Idempotency-Key": "payout-1"})
        assert first.status_code == 201, first.text
        paid = first.json()
        assert paid["state"] == "SUCCEEDED" and paid["bank_account"] == "****7894" and paid["amount"] == 50_00
        again = await withdraw(shop, 50_00, **{"Idempotency-Key": "payout-1"})
        assert again.status_code == 201 and again.json() == paid and again.headers["Idempotent-Replayed"] == "true"
        other = await withdraw(shop, 40_00, **{"Idempotency-Key": "payout-1"})
        assert other.status_code == 409
        assert await balance(hub, merchant_account) == 49_40

        # Two at once, each fitting alone but not together: one is refused.
        racing = await asyncio.gather(withdraw(shop, 30_00), withdraw(shop, 30_00))
        assert sorted(r.status_code for r in racing) == [201, 409]
        # A refund needs what was withdrawn: refused too, the merchant is never negative.
        refund = await shop.api.post(
            "/api/v1/merchant/orders/P-1/refunds", json={"amount": 30_00, "out_refund_no": "r-1"}, headers=key()
        )
        assert refund.status_code == 409 and "balance" in refund.json()["detail"]
        assert await balance(hub, merchant_account) == 19_40
        assert await balance(hub, PAYOUT_ACCOUNT) == 80_00

        listed = (await shop.api.get("/api/v1/merchant/withdrawals")).json()["items"]
        assert [w["amount"] for w in listed] == [30_00, 50_00] and listed[1]["id"] == paid["id"]
        (transfer,) = await hub.hub.payments.ledger.lookup_transfers([paid["transfer_id"]])
        assert (transfer.debit_account_id, transfer.credit_account_id) == (merchant_account, PAYOUT_ACCOUNT)
        assert transfer.code == WITHDRAWAL and transfer.amount == 50_00

        today = datetime.now(UTC).date().isoformat()
        statement = (await shop.api.get(f"/api/v1/merchant/statements/{today}")).json()
        totals = {k: v["amount"] for k, v in statement["totals"].items()}
        assert statement["totals"]["withdrawal"] == {"count": 2, "amount": -80_00}
        assert (
            statement["opening_balance"] + totals["payment"] + totals["fee"] + totals["refund"] + totals["withdrawal"]
            == statement["closing_balance"]
            == await balance(hub, merchant_account)
        )
        withdrawn = [m for m in statement["movements"] if m["kind"] == "withdrawal"]
        assert {m["withdrawal_id"] for m in withdrawn} == {w["id"] for w in listed}
        assert all(m["order_id"] is None for m in withdrawn)
        answer = await shop.api.get(f"/api/v1/merchant/statements/{today}?format=csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert {r["withdrawal_id"] for r in rows if r["kind"] == "withdrawal" and r["record"] == "movement"} == {
            w["id"] for w in listed
        }
        assert int(rows[-1]["amount"]) == statement["closing_balance"]
        await assert_consistent(hub.hub.payments.ledger)


@contextlib.asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
    else:
        async with postgres_database() as url:
            yield {"database_url": url}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_withdrawal_cut_off_by_a_crash_is_settled_when_the_hub_starts(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as where:
        async with running_hub(tmp_path / "hub", **where) as hub:
            shop = await open_shop(hub)
            async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
                assert (await pay(shop, 40_00, "C-1")).status_code == 200
                merchant_id, account = shop.merchant["id"], shop.merchant["account"]
                base = {"merchant_id": merchant_id, "currency": "CNY", "bank_account": "****7894"}
                async with hub.hub.engine.begin() as conn:
                    # "cut" moved its money, then the hub died before its row said so; "ghost" never reached
                    # the ledger.
                    for wid, amount in (("wdr_cut", 15_00), ("wdr_ghost", 20_00)):
                        row = {**base, "id": wid, "amount": amount, "state": "PROCESSING"}
                        await conn.execute(sa.insert(withdrawals_table).values(created_at=1, updated_at=1, **row))
                cut = NewTransfer(
                    "payout:wdr_cut", account, PAYOUT_ACCOUNT, 15_00, "CNY", WITHDRAWAL, user_data="wdr_cut"
                )
                assert await hub.hub.payments.ledger.create_transfers([cut]) == ["ok"]
                left = await balance(hub, account)
        async with running_hub(tmp_path / "hub", **where) as hub:
            async with hub.hub.engine.connect() as conn:
                rows = {r.id: r.state for r in await conn.execute(sa.select(withdrawals_table))}
            assert rows == {"wdr_cut": "SUCCEEDED"}  # settled from the ledger; the ghost is gone
            assert await balance(hub, account) == left == 40_00 - 24 - 15_00
            assert await Withdrawals(hub.hub).recover() == 0
            await assert_consistent(hub.hub.payments.ledger)


async def test_the_merchants_webhook_hears_of_the_payout(tmp_path: Path, receiver: Receiver) -> None:
    async with running_hub(tmp_path, webhooks_allow_insecure=True) as hub:
        shop = await open_shop(hub)
        async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
            made = await shop.api.post("/api/v1/merchant/webhooks", json={"url": receiver.url("shop")})
            assert made.status_code == 201, made.text
            assert (await pay(shop, 12_00, "W-1")).status_code == 200
            done = (await withdraw(shop, 5_00)).json()
            for _ in range(100):
                if any(d.event["type"] == "payout.paid" for d in receiver.to("shop")):
                    break
                await asyncio.sleep(0.05)
            (event,) = [d.event for d in receiver.to("shop") if d.event["type"] == "payout.paid"]
            assert event["id"] == f"evt_{done['id']}" and event["data"] == done
