"""Paying at the counter end to end: wallet, top-up, a watch's payment token, pay codes, micropay, confirmation
on the device, reversal, limits and suspension — against a real hub (broker, database, device)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.receiver import Receiver
from tests.support.hubs import HubUnderTest, running_hub
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk import DeviceClient
from tosplus.sdk.paycode import PayCodeGenerator
from tosplus.services.payments.webhooks import verify_signature


@dataclass
class Shop:
    person: Person
    watch: dict[str, Any]
    merchant: dict[str, Any]
    api: httpx.AsyncClient  # the merchant's
    codes: PayCodeGenerator


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def open_shop(hub: HubUnderTest, *, confirm_above: int = 20_000, top_up: int = 100_00) -> Shop:
    person = await sign_up(hub, "payer")
    home = await person.create_home()
    watch = await hub.create_device("smartwatch")
    assert (await person.bind(home["id"], await sticker_code(hub, watch["id"]))).status_code == 201
    limits = {"per_payment_limit": 50_000, "daily_limit": 80_000, "confirm_above": confirm_above}
    enabled = await person.api.post(f"/api/v1/devices/{watch['id']}/payment-token", json=limits)
    assert enabled.status_code == 201, enabled.text
    assert "key" not in enabled.json() and "token_number" not in enabled.json()
    topped = await person.api.post(
        "/api/v1/wallet/top-ups", json={"amount": top_up, "card_number": "4242424242424242"}, headers=key()
    )
    assert topped.status_code == 201, topped.text
    merchant = (await hub.api.post("/api/v1/merchants", json={"name": "Corner Coffee", "fee_bps": 60})).json()
    base = str(hub.api.base_url)
    async with httpx.AsyncClient(base_url=base, auth=(watch["id"], watch["secret"])) as device:
        creds = (await device.post("/device/v1/payment-token")).json()
    codes = PayCodeGenerator(creds["token_number"], base64.b64decode(creds["key"]))
    shop_api = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {merchant['api_key']}"}, timeout=30)
    return Shop(person, watch, merchant, shop_api, codes)


async def pay(shop: Shop, amount: int, trade: str, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"auth_code": code or shop.codes.next_after_use(), "amount": amount, "out_trade_no": trade}
    return await shop.api.post("/api/v1/merchant/micropay", json=body, headers={**key(), **headers})


async def wallet(shop: Shop) -> dict[str, Any]:
    return dict((await shop.person.api.get("/api/v1/wallet")).json())


async def test_small_payment_is_authorised_at_once_and_exactly_once(any_hub: HubUnderTest) -> None:
    hub = any_hub
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        code = shop.codes.current()
        first = await pay(shop, 25_50, "A-1", code, **{"Idempotency-Key": "till-7-0001"})
        assert first.status_code == 200, first.text
        order = first.json()
        assert order["state"] == "SUCCESS" and order["fee"] == 15 and "user_id" not in order
        again = await pay(shop, 25_50, "A-1", code, **{"Idempotency-Key": "till-7-0001"})
        assert again.json() == order and again.headers["Idempotent-Replayed"] == "true"
        reused = await pay(shop, 10_00, "A-2", code)
        assert reused.status_code == 422 and "used" in reused.json()["detail"]
        assert (await wallet(shop))["balance"] == 100_00 - 25_50
        merchant_account = shop.merchant["account"]
        (account,) = await hub.hub.payments.ledger.lookup_accounts([merchant_account])
        assert account.balance == 25_50 - 15
        forged = await pay(shop, 1_00, "A-3", str(shop.codes.current())[:-2] + "00")
        assert forged.status_code == 422
        await assert_consistent(hub.hub.payments.ledger)


async def test_large_payment_waits_for_the_person_on_the_device(hub: HubUnderTest) -> None:
    shop = await open_shop(hub, confirm_above=50_00, top_up=200_00)
    answers = iter([True, False])

    async def confirm(params: dict[str, Any]) -> dict[str, Any]:
        assert params["merchant"] == "Corner Coffee"
        if not next(answers):
            raise RuntimeError("the person pressed Decline")
        return {"confirmed": True}

    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        async with DeviceClient(shop.watch["id"], shop.watch["secret"], host=hub.mqtt_host, port=hub.mqtt_port) as dev:
            dev.on_command("confirm_payment", confirm)
            await dev.wait_connected(5)
            waiting = await pay(shop, 60_00, "B-1")
            assert waiting.json()["state"] == "USERPAYING", waiting.text
            assert (await wallet(shop))["available"] == 200_00 - 60_00  # reserved, not yet paid
            for _ in range(100):
                state = (await shop.api.get("/api/v1/merchant/orders/B-1")).json()["state"]
                if state != "USERPAYING":
                    break
                await asyncio.sleep(0.05)
            assert state == "SUCCESS"
            declined = await pay(shop, 55_00, "B-2")
            assert declined.json()["state"] == "USERPAYING"
            for _ in range(100):
                order = (await shop.api.get("/api/v1/merchant/orders/B-2")).json()
                if order["state"] != "USERPAYING":
                    break
                await asyncio.sleep(0.05)
            assert order["state"] == "REVOKED" and "not confirmed" in order["reason"]
        assert (await wallet(shop))["available"] == 200_00 - 60_00
        # The device is offline now: the order is revoked at once, nothing stays reserved.
        offline = await pay(shop, 6_000 + 5, "B-3")
        assert offline.json()["state"] == "REVOKED"
        assert (await wallet(shop))["pending"] == 0
        await assert_consistent(hub.hub.payments.ledger)


async def test_limits_balance_suspension_reversal_and_unbinding(hub: HubUnderTest) -> None:
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        over = await pay(shop, 50_001, "C-1")
        assert over.status_code == 402 and "limit" in over.json()["detail"]
        assert (await shop.api.get("/api/v1/merchant/orders/C-1")).json()["state"] == "CLOSED"
        poor = await pay(shop, 100_01, "C-2")
        assert poor.status_code == 402 and "insufficient" in poor.json()["detail"]
        paid = await pay(shop, 40_00, "C-3")
        assert paid.json()["state"] == "SUCCESS"
        reversed_ = await shop.api.post("/api/v1/merchant/orders/C-3/reverse", headers=key())
        assert reversed_.json()["state"] == "REVOKED"
        assert (await wallet(shop))["balance"] == 100_00
        device = f"/api/v1/devices/{shop.watch['id']}/payment-token"
        assert (await shop.person.api.patch(device, json={"status": "suspended"})).json()["status"] == "suspended"
        lost = await pay(shop, 1_00, "C-4")
        assert lost.status_code == 403 and "suspended" in lost.json()["detail"]
        home_id = (await shop.person.api.get("/api/v1/homes")).json()["items"][0]["id"]
        audit = (await shop.person.api.get(f"/api/v1/homes/{home_id}/audit")).json()["items"]
        assert any(a["action"] == "payment.refused" and a["detail"]["reason"] == "suspended" for a in audit)
        assert (await shop.person.api.patch(device, json={"status": "active"})).json()["status"] == "active"
        assert (await pay(shop, 1_00, "C-5")).json()["state"] == "SUCCESS"
        unbound = await shop.person.api.post(f"/api/v1/homes/{home_id}/devices/{shop.watch['id']}/unbind")
        assert unbound.status_code == 200
        assert shop.watch["id"] not in hub.hub.payments.tokens
        gone = await pay(shop, 1_00, "C-6")
        assert gone.status_code == 422 and "token" in gone.json()["detail"]
        await assert_consistent(hub.hub.payments.ledger)


async def test_top_up_idempotency_and_declined_card(hub: HubUnderTest) -> None:
    person = await sign_up(hub, "saver")
    async with person.api:
        body = {"amount": 20_00, "card_number": "4242 4242 4242 4242"}
        headers = {"Idempotency-Key": "topup-1"}
        first = await person.api.post("/api/v1/wallet/top-ups", json=body, headers=headers)
        second = await person.api.post("/api/v1/wallet/top-ups", json=body, headers=headers)
        assert first.status_code == second.status_code == 201 and first.json() == second.json()
        assert (await person.api.get("/api/v1/wallet")).json()["balance"] == 20_00
        other = await person.api.post("/api/v1/wallet/top-ups", json={**body, "amount": 30_00}, headers=headers)
        assert other.status_code == 409
        missing = await person.api.post("/api/v1/wallet/top-ups", json=body)
        assert missing.status_code == 422 and "Idempotency-Key" in missing.json()["detail"]
        declined = await person.api.post(
            "/api/v1/wallet/top-ups", json={**body, "card_number": "4000000000000002"}, headers=key()
        )
        assert declined.status_code == 402 and "declined" in declined.json()["detail"]
        floats = await person.api.post("/api/v1/wallet/top-ups", json={**body, "amount": 12.5}, headers=key())
        assert floats.status_code == 422
        history = (await person.api.get("/api/v1/wallet/transfers")).json()["items"]
        assert [(h["amount"], h["direction"]) for h in history] == [(20_00, "in")]


async def test_the_merchants_webhook_hears_of_the_payment(tmp_path: Path, receiver: Receiver) -> None:
    async with running_hub(tmp_path, webhooks_allow_insecure=True) as hub:
        shop = await open_shop(hub)
        async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
            made = await shop.api.post("/api/v1/merchant/webhooks", json={"url": receiver.url("shop")})
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]
            assert (await pay(shop, 12_00, "W-1")).json()["state"] == "SUCCESS"
            for _ in range(100):
                if receiver.to("shop"):
                    break
                await asyncio.sleep(0.05)
            (delivery,) = receiver.to("shop")
            event = delivery.event
            assert event["type"] == "payment.succeeded" and event["data"]["out_trade_no"] == "W-1"
            assert "user_id" not in event["data"]
            assert verify_signature(secret, delivery.headers["tosplus-signature"], delivery.body)
            assert delivery.headers["tosplus-event-id"] == event["id"]


async def test_risk_controls_velocity_and_bad_codes(hub: HubUnderTest) -> None:
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        for n in range(6):
            assert (await pay(shop, 1_00, f"V-{n}")).json()["state"] == "SUCCESS"
        fast = await pay(shop, 1_00, "V-6")
        assert fast.status_code == 402 and "too many payments from this device" in fast.json()["detail"]
        home_id = (await shop.person.api.get("/api/v1/homes")).json()["items"][0]["id"]
        audit = (await shop.person.api.get(f"/api/v1/homes/{home_id}/audit?limit=200")).json()["items"]
        assert sum(1 for a in audit if a["action"] == "payment.succeeded") == 6  # every decision is recorded
        # Somebody tries made-up codes for this device's token: after five, the token is stopped.
        good = shop.codes.current()
        for n in range(5):
            forged = good[:10] + f"{(int(good[10:17]) + n + 1) % 10**7:07d}"
            from tosplus.sdk.paycode import luhn_digit

            refused = await pay(shop, 1_00, f"F-{n}", forged + luhn_digit(forged))
            assert refused.status_code == 422 and "forged" in refused.json()["detail"]
        token = (await shop.person.api.get(f"/api/v1/devices/{shop.watch['id']}/payment-token")).json()
        assert token["status"] == "suspended"
        audit = (await shop.person.api.get(f"/api/v1/homes/{home_id}/audit?limit=200")).json()["items"]
        assert any(a["action"] == "payment.token_suspended" for a in audit)
