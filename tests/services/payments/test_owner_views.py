"""The console's payment API against a real hub: who may see a merchant (its owner and operators; anyone else is
told it does not exist), the pay code the console shows in place of a screen device (accepted by the counter
once, refused while suspended), the wallet's devices and history, refunds from the console (idempotent, never
more than was paid) and statements identical to the merchant's own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.services.payments.ledger_support import assert_consistent
from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk.paycode import barcode_svg


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@dataclass
class Shop:
    payer: Person
    home: dict[str, Any]
    watch: dict[str, Any]
    owner: Person  # runs the merchant
    merchant: dict[str, Any]
    till: httpx.AsyncClient  # the merchant's API key

    @property
    def orders(self) -> str:
        return f"/api/v1/merchants/{self.merchant['id']}/orders"


@contextlib.asynccontextmanager
async def opened(hub: HubUnderTest) -> AsyncIterator[Shop]:
    payer = await sign_up(hub, "payer")
    owner = await sign_up(hub, "shopkeeper")
    home = await payer.create_home("Flat")
    watch = await hub.create_device("smartwatch", name="Alex's watch")
    assert (await payer.bind(home["id"], await sticker_code(hub, watch["id"]))).status_code == 201
    limits = {"per_payment_limit": 500_00, "daily_limit": 800_00, "confirm_above": 200_00}
    enabled = await payer.api.post(f"/api/v1/devices/{watch['id']}/payment-token", json=limits)
    assert enabled.status_code == 201, enabled.text
    topped = await payer.api.post(
        "/api/v1/wallet/top-ups", json={"amount": 300_00, "card_number": "4242424242424242"}, headers=key()
    )
    assert topped.status_code == 201, topped.text
    created = await hub.api.post("/api/v1/merchants", json={"name": "Corner Coffee", "owner_id": owner.user_id})
    assert created.status_code == 201, created.text
    merchant = created.json()
    till = httpx.AsyncClient(
        base_url=str(hub.api.base_url), headers={"Authorization": f"Bearer {merchant['api_key']}"}, timeout=30
    )
    async with contextlib.aclosing(payer.api), contextlib.aclosing(owner.api), contextlib.aclosing(till):
        yield Shop(payer, home, watch, owner, merchant, till)


async def shown_code(shop: Shop) -> str:
    answer = await shop.payer.api.get(f"/api/v1/devices/{shop.watch['id']}/payment-token/pay-code")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["code"])


async def micropay(shop: Shop, code: str, amount: int, trade: str) -> httpx.Response:
    body = {"auth_code": code, "amount": amount, "out_trade_no": trade, "description": "flat white"}
    return await shop.till.post("/api/v1/merchant/micropay", json=body, headers=key())


async def test_only_the_owner_and_operators_see_a_merchant(any_hub: HubUnderTest) -> None:
    hub = any_hub
    async with opened(hub) as shop:
        stranger = await sign_up(hub, "stranger")
        async with contextlib.aclosing(stranger.api):
            paid = await micropay(shop, await shown_code(shop), 12_00, "V-1")
            assert paid.json()["state"] == "SUCCESS", paid.text
            mid = shop.merchant["id"]
            today = datetime.now(UTC).date().isoformat()
            paths = [
                f"/api/v1/merchants/{mid}",
                f"/api/v1/merchants/{mid}/orders",
                f"/api/v1/merchants/{mid}/refunds",
                f"/api/v1/merchants/{mid}/statements/{today}",
                f"/api/v1/merchants/{mid}/statements/{today}.csv",
            ]
            missing = await stranger.api.get("/api/v1/merchants/mch_0000000000000000")
            assert missing.status_code == 404
            for path in paths:
                refused = await stranger.api.get(path)
                assert refused.status_code == 404, (path, refused.text)
                assert refused.json()["detail"] == missing.json()["detail"]  # cannot tell it exists
                assert (await shop.owner.api.get(path)).status_code == 200, path
                assert (await hub.api.get(path)).status_code == 200, path  # the operator
            refund = await stranger.api.post(f"{shop.orders}/V-1/refunds", json={"amount": 1_00}, headers=key())
            assert refund.status_code == 404
            assert (await shop.owner.api.get(f"{shop.orders}")).json()["items"][0]["refunded_amount"] == 0

            assert (await stranger.api.get("/api/v1/merchants")).json()["items"] == []
            (mine,) = (await shop.owner.api.get("/api/v1/merchants")).json()["items"]
            assert mine["id"] == mid and mine["owner_id"] == shop.owner.user_id
            assert mine["balance"] == 12_00 - 7 and mine["available"] == 12_00 - 7  # 0.6 % fee, rounded down
            assert "api_key" not in mine
            everyone = (await hub.api.get("/api/v1/merchants")).json()["items"]
            assert mid in {m["id"] for m in everyone}

            (order,) = (await shop.owner.api.get(shop.orders)).json()["items"]
            assert order["out_trade_no"] == "V-1" and order["state"] == "SUCCESS" and order["amount"] == 12_00
            assert order["refundable_amount"] == 12_00 and "user_id" not in order and "token_id" not in order

            # The pay code is the wallet owner's alone: not another member's who controls the device, nor
            # an operator's.
            invitation = await shop.payer.api.post(
                f"/api/v1/homes/{shop.home['id']}/invitations", json={"role": "member"}
            )
            joined = await stranger.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
            assert joined.status_code == 200, joined.text
            pay_code = f"/api/v1/devices/{shop.watch['id']}/payment-token/pay-code"
            assert (await stranger.api.get(f"/api/v1/devices/{shop.watch['id']}/payment-token")).status_code == 200
            assert (await stranger.api.get(pay_code)).status_code == 404
            assert (await hub.api.get(pay_code)).status_code == 404
            assert (await stranger.api.get("/api/v1/wallet/payment-devices")).json()["items"] == []


async def test_the_shown_pay_code_pays_once_and_not_while_suspended(any_hub: HubUnderTest) -> None:
    hub = any_hub
    async with opened(hub) as shop:
        pay_code = f"/api/v1/devices/{shop.watch['id']}/payment-token/pay-code"
        answer = await shop.payer.api.get(pay_code)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        shown = answer.json()
        code = shown["code"]
        assert len(code) == 18 and code.startswith("28") and shown["grouped"].replace(" ", "") == code
        assert shown["qr_svg"].startswith("<svg") and 1 <= shown["expires_in_s"] <= 120
        assert shown["barcode_svg"] == barcode_svg(shown["code"])  # Code 128 of the shown code (read back in sdk tests)
        assert (await shown_code(shop)) == code  # the same code until it is used or its minute ends

        paid = await micropay(shop, code, 25_50, "P-1")
        assert paid.status_code == 200 and paid.json()["state"] == "SUCCESS", paid.text
        again = await micropay(shop, code, 1_00, "P-2")
        assert again.status_code == 422 and "used" in again.json()["detail"]
        fresh = await shown_code(shop)
        assert fresh != code  # a spent code is never shown again

        (device,) = (await shop.payer.api.get("/api/v1/wallet/payment-devices")).json()["items"]
        assert device["device_id"] == shop.watch["id"] and device["status"] == "active"
        assert device["device"]["name"] == "Alex's watch" and device["device"]["home_name"] == "Flat"
        assert device["device"]["product_id"] == "smartwatch"
        assert device["spent_today"] == 25_50 and device["left_today"] == 800_00 - 25_50
        assert device["daily_limit"] == 800_00 and "key" not in device and "token_number" not in device

        history = (await shop.payer.api.get("/api/v1/wallet/history")).json()
        payment, top_up = history["items"]
        assert payment["kind"] == "payment" and payment["direction"] == "out" and payment["amount"] == 25_50
        assert payment["merchant"]["name"] == "Corner Coffee" and payment["device"]["name"] == "Alex's watch"
        assert payment["description"] == "flat white" and payment["state"] == "posted"
        assert top_up["kind"] == "top_up" and top_up["direction"] == "in" and top_up["balance_after"] == 300_00
        wallet = (await shop.payer.api.get("/api/v1/wallet")).json()
        assert payment["balance_after"] == wallet["balance"] == 300_00 - 25_50
        assert history["opening_balance"] == 0 and history["next_before"] is None
        first = (await shop.payer.api.get("/api/v1/wallet/history", params={"limit": 1})).json()
        assert [i["id"] for i in first["items"]] == [payment["id"]] and first["next_before"] is not None
        rest = await shop.payer.api.get("/api/v1/wallet/history", params={"limit": 1, "before": first["next_before"]})
        assert [i["id"] for i in rest.json()["items"]] == [top_up["id"]] and rest.json()["opening_balance"] == 0

        # Suspended: no code is shown, and the one shown before is refused at the counter.
        suspended = await shop.payer.api.patch(
            f"/api/v1/devices/{shop.watch['id']}/payment-token", json={"status": "suspended"}
        )
        assert suspended.status_code == 200, suspended.text
        refused = await shop.payer.api.get(pay_code)
        assert refused.status_code == 403 and "suspended" in refused.json()["detail"]
        blocked = await micropay(shop, fresh, 5_00, "P-3")
        assert blocked.status_code == 403, blocked.text
        resumed = await shop.payer.api.patch(
            f"/api/v1/devices/{shop.watch['id']}/payment-token", json={"status": "active"}
        )
        assert resumed.status_code == 200
        paid_again = await micropay(shop, await shown_code(shop), 5_00, "P-4")
        assert paid_again.json()["state"] == "SUCCESS", paid_again.text
        assert (await shop.payer.api.get("/api/v1/wallet")).json()["balance"] == 300_00 - 25_50 - 5_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_refunds_from_the_console_are_idempotent_and_bounded(any_hub: HubUnderTest) -> None:
    hub = any_hub
    async with opened(hub) as shop:
        paid = await micropay(shop, await shown_code(shop), 100_00, "R-1")
        assert paid.json()["state"] == "SUCCESS", paid.text
        url = f"{shop.orders}/R-1/refunds"
        no_key = await shop.owner.api.post(url, json={"amount": 1_00})
        assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]
        first = await shop.owner.api.post(
            url, json={"amount": 30_00, "reason": "cold"}, headers={"Idempotency-Key": "k1"}
        )
        assert first.status_code == 201, first.text
        made = first.json()
        assert made["amount"] == 30_00 and made["state"] == "SUCCEEDED" and made["reason"] == "cold"
        assert made["out_refund_no"].startswith("console-")
        replay = await shop.owner.api.post(
            url, json={"amount": 30_00, "reason": "cold"}, headers={"Idempotency-Key": "k1"}
        )
        assert replay.status_code == 201 and replay.json() == made and replay.headers["Idempotent-Replayed"] == "true"
        too_much = await shop.owner.api.post(url, json={"amount": 70_01}, headers=key())
        assert too_much.status_code == 409 and "more than is left to refund" in too_much.json()["detail"]
        by_operator = await hub.api.post(url, json={"amount": 70_00}, headers=key())
        assert by_operator.status_code == 201, by_operator.text
        after_all = await shop.owner.api.post(url, json={"amount": 1}, headers=key())
        assert after_all.status_code == 409

        (order,) = (await shop.owner.api.get(shop.orders)).json()["items"]
        assert order["refunded_amount"] == 100_00 and order["refundable_amount"] == 0 and order["state"] == "SUCCESS"
        listed = (await shop.owner.api.get(f"/api/v1/merchants/{shop.merchant['id']}/refunds")).json()["items"]
        assert [r["amount"] for r in listed] == [70_00, 30_00]  # newest first
        assert listed[1] == made
        # The merchant's own API agrees: two refunds, all of it.
        own = (await shop.till.get("/api/v1/merchant/orders/R-1/refunds")).json()
        assert own["refunded_amount"] == 100_00 and len(own["items"]) == 2
        assert (await shop.payer.api.get("/api/v1/wallet")).json()["balance"] == 300_00
        history = (await shop.payer.api.get("/api/v1/wallet/history")).json()["items"]
        assert [i["kind"] for i in history[:2]] == ["refund", "refund"]
        assert history[0]["merchant"]["name"] == "Corner Coffee" and history[0]["balance_after"] == 300_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_statements_are_the_merchants_own(any_hub: HubUnderTest) -> None:
    hub = any_hub
    async with opened(hub) as shop:
        assert (await micropay(shop, await shown_code(shop), 40_00, "S-1")).json()["state"] == "SUCCESS"
        assert (await micropay(shop, await shown_code(shop), 8_88, "S-2")).json()["state"] == "SUCCESS"
        refund = await shop.owner.api.post(f"{shop.orders}/S-1/refunds", json={"amount": 10_00}, headers=key())
        assert refund.status_code == 201, refund.text
        today = datetime.now(UTC).date().isoformat()
        base = f"/api/v1/merchants/{shop.merchant['id']}/statements/{today}"
        mine = await shop.owner.api.get(base)
        theirs = await shop.till.get(f"/api/v1/merchant/statements/{today}")
        assert mine.status_code == 200 and mine.json() == theirs.json()
        kinds = [m["kind"] for m in mine.json()["movements"]]
        assert kinds.count("payment") == 2 and kinds.count("refund") == 1
        assert mine.json()["closing_balance"] == 40_00 + 8_88 - 24 - 5 - 10_00 + 6  # fees 24 + 5, 6 fen back
        csv_file = await shop.owner.api.get(f"{base}.csv")
        csv_query = await shop.owner.api.get(base, params={"format": "csv"})
        their_csv = await shop.till.get(f"/api/v1/merchant/statements/{today}", params={"format": "csv"})
        assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv")
        assert csv_file.text == csv_query.text == their_csv.text
        assert "attachment" in csv_file.headers["content-disposition"]
        assert (
            await shop.owner.api.get(f"/api/v1/merchants/{shop.merchant['id']}/statements/2999-01-01")
        ).status_code == 422
