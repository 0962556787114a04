"""Refunds and settlement statements end to end against a real hub: partial and full refunds with the fee given
back in step, never more than was paid (also when two refunds race), idempotent by key and by out_refund_no,
and daily statements (JSON and CSV) that reconcile exactly with the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.receiver import Receiver
from tests.services.payments.test_counter import Shop, key, open_shop, pay, wallet
from tests.support.hubs import HubUnderTest, running_hub
from tosplus.services.payments import ledger as ledger_module
from tosplus.services.payments.ledger_types import NewTransfer
from tosplus.services.payments.refunds import Refunds
from tosplus.services.payments.service import FUNDING_ACCOUNT
from tosplus.services.payments.tables_refunds import refunds as refunds_table
from tosplus.storage.tables import metadata

DAY_MS = 86_400_000


async def refunds_ready(hub: HubUnderTest) -> None:
    """The refunds table, until the hub's migrations create it (then this does nothing)."""
    async with hub.hub.engine.begin() as conn:
        await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[refunds_table]))


async def refund(shop: Shop, trade: str, amount: int, refund_no: str, **headers: str) -> httpx.Response:
    body = {"amount": amount, "out_refund_no": refund_no, "reason": "customer changed their mind"}
    return await shop.api.post(f"/api/v1/merchant/orders/{trade}/refunds", json=body, headers={**key(), **headers})


async def balance(hub: HubUnderTest, account: str) -> int:
    (found,) = await hub.hub.payments.ledger.lookup_accounts([account])
    return int(found.balance)


async def statement(shop: Shop, day: date | str) -> dict[str, Any]:
    text = day if isinstance(day, str) else day.isoformat()
    answer = await shop.api.get(f"/api/v1/merchant/statements/{text}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def reconciles(found: dict[str, Any]) -> None:
    """Opening + every movement = closing, each running balance follows, and the totals add up."""
    running = found["opening_balance"]
    for m in found["movements"]:
        running += m["amount"]
        assert m["balance_after"] == running
    assert running == found["closing_balance"]
    assert sum(t["amount"] for t in found["totals"].values()) == running - found["opening_balance"]
    assert sum(t["count"] for t in found["totals"].values()) == len(found["movements"])


async def test_partial_and_full_refunds_give_the_fee_back_in_step(any_hub: HubUnderTest) -> None:
    hub = any_hub
    await refunds_ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        assert (await pay(shop, 25_50, "R-1")).json()["fee"] == 15
        first = await refund(shop, "R-1", 1_00, "rf-1", **{"Idempotency-Key": "refund-key-1"})
        assert first.status_code == 201, first.text
        made = first.json()
        assert made["state"] == "SUCCEEDED" and made["amount"] == 1_00 and made["fee_refund"] == 0  # 15*100//2550
        assert made["reason"] == "customer changed their mind" and made["out_trade_no"] == "R-1"
        replay = await refund(shop, "R-1", 1_00, "rf-1", **{"Idempotency-Key": "refund-key-1"})
        assert replay.status_code == 201 and replay.json() == made and replay.headers["Idempotent-Replayed"] == "true"
        same_number = await refund(shop, "R-1", 1_00, "rf-1")  # another key, the same refund number
        assert same_number.status_code == 201 and same_number.json() == made
        other_amount = await refund(shop, "R-1", 2_00, "rf-1")
        assert other_amount.status_code == 409 and "already used" in other_amount.json()["detail"]

        second = (await refund(shop, "R-1", 10_00, "rf-2")).json()
        assert second["fee_refund"] == 6  # 15 * 1100 // 2550 - 0
        over = await refund(shop, "R-1", 15_00, "rf-3")
        assert over.status_code == 409 and "1450 of 2550" in over.json()["detail"]
        rest = (await refund(shop, "R-1", 14_50, "rf-4")).json()
        assert rest["fee_refund"] == 9  # the rest of the fee: 15 in all, never more
        nothing_left = await refund(shop, "R-1", 1, "rf-5")
        assert nothing_left.status_code == 409 and "more than is left" in nothing_left.json()["detail"]

        listed = (await shop.api.get("/api/v1/merchant/orders/R-1/refunds")).json()
        assert [i["out_refund_no"] for i in listed["items"]] == ["rf-1", "rf-2", "rf-4"]
        assert listed["refunded_amount"] == 25_50 and listed["refundable_amount"] == 0
        assert (await shop.api.get("/api/v1/merchant/orders/R-1")).json()["state"] == "SUCCESS"
        assert (await wallet(shop))["balance"] == 100_00
        assert await balance(hub, shop.merchant["account"]) == 0  # paid back in full, fee included
        assert await balance(hub, "fee:platform") == 0

        today = await statement(shop, datetime.now(UTC).date())
        reconciles(today)
        assert today["closing_balance"] == await balance(hub, shop.merchant["account"])
        kinds = [m["kind"] for m in today["movements"]]
        assert sorted(kinds) == ["fee", "fee_refund", "fee_refund", "payment", "refund", "refund", "refund"]
        assert {m["out_refund_no"] for m in today["movements"] if m["kind"] == "refund"} == {"rf-1", "rf-2", "rf-4"}
        await assert_consistent(hub.hub.payments.ledger)


async def test_two_refunds_at_once_cannot_exceed_what_was_paid(hub: HubUnderTest) -> None:
    await refunds_ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        assert (await pay(shop, 100_00, "P-1")).json()["state"] == "SUCCESS"
        answers = await asyncio.gather(refund(shop, "P-1", 60_00, "a"), refund(shop, "P-1", 60_00, "b"))
        assert sorted(a.status_code for a in answers) == [201, 409]
        refused = next(a for a in answers if a.status_code == 409).json()
        assert "more than is left" in refused["detail"] and "4000 of 10000" in refused["detail"]
        listed = (await shop.api.get("/api/v1/merchant/orders/P-1/refunds")).json()
        assert listed["refunded_amount"] == 60_00 and len(listed["items"]) == 1
        assert (await wallet(shop))["balance"] == 60_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_only_paid_orders_and_covered_refunds(hub: HubUnderTest) -> None:
    await refunds_ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        assert (await pay(shop, 50_001, "N-1")).status_code == 402  # over the device's limit: CLOSED
        closed = await refund(shop, "N-1", 1_00, "n-1")
        assert closed.status_code == 409 and "CLOSED" in closed.json()["detail"]
        assert (await pay(shop, 10_00, "N-2")).json()["state"] == "SUCCESS"
        assert (await shop.api.post("/api/v1/merchant/orders/N-2/reverse", headers=key())).json()["state"] == "REVOKED"
        revoked = await refund(shop, "N-2", 1_00, "n-2")
        assert revoked.status_code == 409 and "REVOKED" in revoked.json()["detail"]
        assert (await refund(shop, "nope", 1_00, "n-3")).status_code == 404
        no_key = await shop.api.post("/api/v1/merchant/orders/N-2/refunds", json={"amount": 1, "out_refund_no": "x"})
        assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]
        assert (await refund(shop, "N-2", 0, "n-4")).status_code == 422
        assert (await refund(shop, "N-2", 1, "bad number")).status_code == 422

        assert (await pay(shop, 20_00, "N-3")).json()["state"] == "SUCCESS"
        account = shop.merchant["account"]
        gone = NewTransfer("test-withdrawal", account, FUNDING_ACCOUNT, await balance(hub, account) - 1_00, "CNY", 9)
        assert await hub.hub.payments.ledger.create_transfers([gone]) == ["ok"]  # the money left the merchant
        uncovered = await refund(shop, "N-3", 5_00, "n-5")
        assert uncovered.status_code == 409 and "does not cover" in uncovered.json()["detail"]
        assert await balance(hub, account) == 1_00
        covered = await refund(shop, "N-3", 1_00, "n-6")  # costs 1_00 less the fee given back (1)
        assert covered.status_code == 201 and covered.json()["fee_refund"] == 0
        await assert_consistent(hub.hub.payments.ledger)


async def test_refunds_a_crash_left_half_done_are_settled(hub: HubUnderTest) -> None:
    await refunds_ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        order = (await pay(shop, 30_00, "K-1")).json()
        done = (await refund(shop, "K-1", 10_00, "k-1")).json()
        engine, t = hub.hub.engine, refunds_table
        async with engine.begin() as conn:
            # k-1 moved its money but its row says otherwise; "ghost" never reached the ledger.
            await conn.execute(sa.update(t).where(t.c.id == done["id"]).values(state="PROCESSING"))
            ghost = {**done, "id": "rfd_ghost", "out_refund_no": "ghost", "state": "PROCESSING", "updated_at": 1}
            await conn.execute(sa.insert(t).values(merchant_id=shop.merchant["id"], **ghost))
        listed = (await shop.api.get("/api/v1/merchant/orders/K-1/refunds")).json()
        assert [(i["out_refund_no"], i["state"]) for i in listed["items"]] == [("k-1", "SUCCEEDED")]
        assert listed["refunded_amount"] == 10_00 and listed["order_id"] == order["id"]
        again = await refund(shop, "K-1", 20_00, "ghost")  # the number is free again: nothing had moved
        assert again.status_code == 201 and again.json()["id"] != "rfd_ghost"
        assert await Refunds(hub.hub).recover() == 0
        await assert_consistent(hub.hub.payments.ledger)


async def test_statements_reconcile_with_the_ledger_across_days(
    any_hub: HubUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = any_hub
    await refunds_ready(hub)
    shop = await open_shop(hub)
    today = datetime.now(UTC).date()
    day1, day2 = today - timedelta(days=2), today - timedelta(days=1)

    def at_noon(day: date) -> None:
        noon = int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()) * 1000
        monkeypatch.setattr(ledger_module, "now_ms", lambda: noon)

    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        at_noon(day1)
        assert (await pay(shop, 20_00, "S-1")).json()["fee"] == 12
        assert (await refund(shop, "S-1", 5_00, "s-1")).json()["fee_refund"] == 3
        at_noon(day2)
        assert (await pay(shop, 30_00, "S-2")).status_code == 200
        assert (await refund(shop, "S-2", 30_00, "s-2")).json()["fee_refund"] == 18
        assert (await pay(shop, 7_00, "S-3")).json()["fee"] == 4
        assert (await shop.api.post("/api/v1/merchant/orders/S-3/reverse", headers=key())).status_code == 200
        monkeypatch.undo()

        before = await statement(shop, day1 - timedelta(days=1))
        assert before["movements"] == [] and before["opening_balance"] == before["closing_balance"] == 0
        first = await statement(shop, day1)
        reconciles(first)
        assert first["final"] and first["opening_balance"] == 0
        assert {k: v["amount"] for k, v in first["totals"].items() if v["count"]} == {
            "payment": 20_00,
            "fee": -12,
            "refund": -5_00,
            "fee_refund": 3,
        }
        assert first["closing_balance"] == 14_91
        second = await statement(shop, day2)
        reconciles(second)
        assert second["opening_balance"] == first["closing_balance"] == 14_91
        assert second["totals"]["reversal"] == {"count": 1, "amount": -7_00}
        assert second["totals"]["payment"] == {"count": 2, "amount": 37_00}
        assert second["closing_balance"] == 14_91  # S-2 refunded in full and S-3 reversed: nothing added
        now = await statement(shop, today)
        assert now["movements"] == [] and not now["final"]
        assert now["opening_balance"] == now["closing_balance"] == await balance(hub, shop.merchant["account"])

        csv_answer = await shop.api.get(f"/api/v1/merchant/statements/{day2.isoformat()}?format=csv")
        assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
        assert rows[0]["record"] == "opening" and int(rows[0]["amount"]) == second["opening_balance"]
        assert rows[-1]["record"] == "closing" and int(rows[-1]["amount"]) == second["closing_balance"]
        moved = [r for r in rows if r["record"] == "movement"]
        assert [(r["transfer_id"], int(r["amount"])) for r in moved] == [
            (m["transfer_id"], m["amount"]) for m in second["movements"]
        ]
        assert int(rows[0]["amount"]) + sum(int(r["amount"]) for r in moved) == int(rows[-1]["amount"])
        totals = {r["kind"]: int(r["amount"]) for r in rows if r["record"] == "total"}
        assert totals == {k: v["amount"] for k, v in second["totals"].items()}
        assert {r["out_trade_no"] for r in moved} == {"S-2", "S-3"}

        for wrong in ("2024-13-01", "20240101", (today + timedelta(days=1)).isoformat()):
            assert (await shop.api.get(f"/api/v1/merchant/statements/{wrong}")).status_code == 422
        assert (await shop.api.get(f"/api/v1/merchant/statements/{today}?format=xml")).status_code == 422
        await assert_consistent(hub.hub.payments.ledger)


async def test_the_merchants_webhook_hears_of_the_refund(tmp_path: Path, receiver: Receiver) -> None:
    async with running_hub(tmp_path, webhooks_allow_insecure=True) as hub:
        await refunds_ready(hub)
        shop = await open_shop(hub)
        async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
            made = await shop.api.post("/api/v1/merchant/webhooks", json={"url": receiver.url("shop")})
            assert made.status_code == 201, made.text
            assert (await pay(shop, 12_00, "W-1")).json()["state"] == "SUCCESS"
            done = (await refund(shop, "W-1", 2_00, "w-1")).json()
            for _ in range(100):
                if any(d.event["type"] == "refund.succeeded" for d in receiver.to("shop")):
                    break
                await asyncio.sleep(0.05)
            (event,) = [d.event for d in receiver.to("shop") if d.event["type"] == "refund.succeeded"]
            assert event["id"] == f"evt_{done['id']}" and event["data"] == done
