"""The counter's quick lane: plain payments written many to one transaction, and everything it cannot judge
handed to the regular path — against a real hub and database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.test_counter import Shop, open_shop, pay, wallet
from tests.support.hubs import HubUnderTest
from tosplus.services.homes import tables as homes_tables
from tosplus.services.payments import counter_quick
from tosplus.services.payments import tables_payments as t
from tosplus.services.payments.idempotency import RequestIdentity, StoredResponse, fingerprint
from tosplus.services.payments.risk import RiskControls


def at_the_till(hub: HubUnderTest, shop: Shop, amount: int, trade: str, code: str, key: str | None = None) -> Any:
    """What the micropay route does, without HTTP: so that many payments reach the lane in one turn."""
    merchant = hub.hub.payments.merchants[shop.merchant["id"]]
    body = {"auth_code": code, "amount": amount, "out_trade_no": trade}
    identity = RequestIdentity(
        f"merchant:{merchant.id} POST /api/v1/merchant/micropay",
        key or uuid.uuid4().hex,
        fingerprint("POST", "/api/v1/merchant/micropay", body),
    )
    return hub.hub.counter.pay_request(hub.hub.idempotency, identity, merchant, code, amount, trade, None)


def json_of(answer: StoredResponse) -> dict[str, Any]:
    return dict(orjson.loads(answer.body))


def fast(hub: HubUnderTest) -> None:
    """Lift the velocity limits: these tests pay many times a minute from one watch on purpose."""
    hub.hub.counter.risk = RiskControls(per_token_per_minute=1000, per_wallet_per_minute=1000)


async def test_payments_at_once_share_one_transaction_and_every_cent_is_accounted(any_hub: HubUnderTest) -> None:
    hub = any_hub
    fast(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        lane = hub.hub.counter.quick
        batches, paid = lane.batches, lane.paid
        amounts = [5_00 + n for n in range(5)]  # a watch shows 7 codes a minute
        codes = [shop.codes.next_after_use() for _ in amounts]
        answers = await asyncio.gather(
            *(
                at_the_till(hub, shop, amount, f"Q-{n}", code)
                for n, (amount, code) in enumerate(zip(amounts, codes, strict=True))
            )
        )
        assert [(answer.status, replayed) for answer, replayed in answers] == [(200, False)] * 5
        orders = [json_of(answer) for answer, _ in answers]
        assert {o["state"] for o in orders} == {"SUCCESS"} and "user_id" not in orders[0]
        assert (lane.batches - batches, lane.paid - paid) == (1, 5)  # all five in one transaction

        total, fees = sum(amounts), sum(o["fee"] for o in orders)
        assert (await wallet(shop))["balance"] == 100_00 - total
        (account,) = await hub.hub.payments.ledger.lookup_accounts([shop.merchant["account"]])
        assert account.balance == total - fees
        await assert_consistent(hub.hub.payments.ledger)
        async with hub.hub.engine.connect() as conn:
            stored = (await conn.execute(sa.select(t.orders).where(t.orders.c.out_trade_no.like("Q-%")))).all()
            audited = (
                await conn.execute(
                    sa.select(sa.func.count()).where(
                        homes_tables.audit_log.c.action == "payment.succeeded",
                        homes_tables.audit_log.c.device_id == shop.watch["id"],
                    )
                )
            ).scalar()
        assert sorted((o.out_trade_no, o.state, o.amount) for o in stored) == [
            (f"Q-{n}", "SUCCESS", amount) for n, amount in enumerate(amounts)
        ]
        assert audited == 5  # the owner sees every payment in the home's audit log

        # Through the API: the answer is stored with its key, and a retry gets it again.
        code = shop.codes.next_after_use()
        first = await pay(shop, 3_00, "Q-api", code, **{"Idempotency-Key": "till-1"})
        again = await pay(shop, 3_00, "Q-api", code, **{"Idempotency-Key": "till-1"})
        assert first.status_code == again.status_code == 200, first.text
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        other = await pay(shop, 4_00, "Q-api", code, **{"Idempotency-Key": "till-1"})
        assert other.status_code == 409  # the same key for another request


async def test_what_the_lane_cannot_judge_goes_the_regular_way(hub: HubUnderTest) -> None:
    fast(hub)
    shop = await open_shop(hub, top_up=100_00)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        # One code scanned twice at once: one payment, one refusal "used".
        code = shop.codes.next_after_use()
        (a, _), (b, _) = await asyncio.gather(
            at_the_till(hub, shop, 1_00, "C-1", code), at_the_till(hub, shop, 1_00, "C-2", code)
        )
        assert sorted([a.status, b.status]) == [200, 422]
        assert "used" in json_of(b if b.status == 422 else a)["detail"]

        # One key sent twice at once: one acts, the other gets its answer replayed.
        code = shop.codes.next_after_use()
        (a, replayed_a), (b, replayed_b) = await asyncio.gather(
            at_the_till(hub, shop, 2_00, "K-1", code, key="same"), at_the_till(hub, shop, 2_00, "K-1", code, key="same")
        )
        assert a == b and a.status == 200 and sorted([replayed_a, replayed_b]) == [False, True]

        # One order number with two keys: one order, both answers show it.
        code, code2 = shop.codes.next_after_use(), shop.codes.next_after_use()
        (a, _), (b, _) = await asyncio.gather(
            at_the_till(hub, shop, 3_00, "T-1", code), at_the_till(hub, shop, 3_00, "T-1", code2)
        )
        assert a.status == b.status == 200 and json_of(a)["id"] == json_of(b)["id"]

        # Two payments the wallet can pay one of: one succeeds, one is refused with the reason, order CLOSED.
        left = (await wallet(shop))["balance"]
        big = left // 2 + 1
        code, code2 = shop.codes.next_after_use(), shop.codes.next_after_use()
        (a, _), (b, _) = await asyncio.gather(
            at_the_till(hub, shop, big, "B-1", code), at_the_till(hub, shop, big, "B-2", code2)
        )
        assert sorted([a.status, b.status]) == [200, 402]
        refused = json_of(b if b.status == 402 else a)
        assert "insufficient balance" in refused["detail"]
        assert (await wallet(shop))["balance"] == left - big
        async with hub.hub.engine.connect() as conn:
            states = dict(
                (
                    await conn.execute(
                        sa.select(t.orders.c.out_trade_no, t.orders.c.state).where(t.orders.c.out_trade_no.like("B-%"))
                    )
                ).all()
            )
        assert sorted(states.values()) == ["CLOSED", "SUCCESS"]
        await assert_consistent(hub.hub.payments.ledger)
        assert hub.hub.counter.quick.paid >= 4


async def test_the_daily_limit_holds_within_a_batch(hub: HubUnderTest) -> None:
    fast(hub)
    shop = await open_shop(hub, top_up=2_000_00)  # open_shop's daily limit: 80,000 fen
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        codes = [shop.codes.next_after_use() for _ in range(3)]
        answers = await asyncio.gather(*(at_the_till(hub, shop, 19_000, f"D-{n}", c) for n, c in enumerate(codes)))
        statuses = sorted(answer.status for answer, _ in answers)
        assert statuses == [200, 200, 200]  # 57,000 of 80,000
        codes = [shop.codes.next_after_use() for _ in range(3)]
        answers = await asyncio.gather(*(at_the_till(hub, shop, 19_000, f"E-{n}", c) for n, c in enumerate(codes)))
        statuses = sorted(answer.status for answer, _ in answers)
        assert statuses == [200, 402, 402]  # one more fits (76,000); the others would pass the limit
        assert all("daily limit" in json_of(answer)["detail"] for answer, _ in answers if answer.status == 402)
        assert (await wallet(shop))["balance"] == 2_000_00 - 4 * 19_000


async def test_a_batch_that_fails_in_the_database_loses_nothing(
    hub: HubUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another hub process spent a code after the lane's checks: the batch's insert fails, nothing of it is
    written, and each payment goes the regular path, which refuses the spent code and pays the others."""
    fast(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        codes = [shop.codes.next_after_use() for _ in range(4)]
        await hub.hub.counter.verifier.verify(codes[2])  # "the other process"

        async def sees_nothing(conn: Any, batch: Any, day_start: int) -> Any:
            return counter_quick._Taken(set(), set(), set(), {})

        monkeypatch.setattr(counter_quick, "_taken", sees_nothing)
        answers = await asyncio.gather(*(at_the_till(hub, shop, 2_00, f"F-{n}", c) for n, c in enumerate(codes)))
        assert [answer.status for answer, _ in answers] == [200, 200, 422, 200]
        assert (await wallet(shop))["balance"] == 100_00 - 3 * 2_00
        async with hub.hub.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.orders.c.state).where(t.orders.c.out_trade_no.like("F-%")))).all()
        assert sorted(r.state for r in rows) == ["SUCCESS"] * 3
        await assert_consistent(hub.hub.payments.ledger)
