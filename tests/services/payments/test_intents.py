"""Payment intents end to end, against a real hub: a merchant (or the device itself, with signed requests) asks
the person to pay; the person confirms on the device or in the console, or someone cancels, or it expires; the
ledger balances afterwards."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.receiver import Receiver
from tests.services.payments.test_counter import Shop, key, open_shop, wallet
from tests.support.hubs import HubUnderTest, running_hub
from tests.support.people import sign_up
from tosplus.sdk import DeviceClient
from tosplus.services.payments.intents import Intents, _transfers, intents_of
from tosplus.services.payments.routes_intents import sign
from tosplus.services.payments.tables_intents import payment_intents
from tosplus.services.payments.webhooks import verify_signature
from tosplus.storage.tables import metadata

DEVICE_INTENTS = "/api/v1/device-payments/payment-intents"


async def ready(hub: HubUnderTest) -> Intents:
    """The intents table (create_all skips it once the hub's migrations make it) and the hub's service."""
    async with hub.hub.engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=[payment_intents]))
    return await intents_of(hub.hub)


async def ask(shop: Shop, amount: int, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    """The merchant asks the watch's owner to pay ``amount``."""
    body = {"amount": amount, "currency": "CNY", "device_id": shop.watch["id"], "description": "Milk", **extra}
    return await shop.api.post("/api/v1/merchant/payment-intents", json=body, headers=headers or key())


async def settled(shop: Shop, intent_id: str) -> dict[str, Any]:
    """The intent once it succeeded or was canceled (the device answers in the background)."""
    for _ in range(200):
        intent = dict((await shop.api.get(f"/api/v1/merchant/payment-intents/{intent_id}")).json())
        if intent["status"] in ("succeeded", "canceled"):
            return intent
        await asyncio.sleep(0.05)
    return intent


async def device_key(hub: HubUnderTest, shop: Shop) -> bytes:
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), auth=(shop.watch["id"], shop.watch["secret"])) as dev:
        return base64.b64decode((await dev.post("/device/v1/payment-token")).json()["key"])


def signed(device_id: str, secret: bytes, method: str, path: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if ts is None else ts
    return {
        "TOSPLUS-Device": device_id,
        "TOSPLUS-Timestamp": str(stamp),
        "TOSPLUS-Signature": sign(secret, stamp, method, path, body),
        "Content-Type": "application/json",
    }


async def test_merchant_intent_confirmed_or_declined_on_the_device(any_hub: HubUnderTest) -> None:
    hub = any_hub
    await ready(hub)
    shop = await open_shop(hub)
    answers = iter([True, False])
    asked: list[dict[str, Any]] = []

    async def confirm(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params)
        if not next(answers):
            raise RuntimeError("the person pressed Decline")
        return {"confirmed": True}

    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        async with DeviceClient(shop.watch["id"], shop.watch["secret"], host=hub.mqtt_host, port=hub.mqtt_port) as dev:
            dev.on_command("confirm_payment", confirm)
            await dev.wait_connected(5)
            headers = {"Idempotency-Key": "fridge-order-1"}
            created = await ask(shop, 30_00, metadata={"order": "F-1"}, headers=headers)
            assert created.status_code == 201, created.text
            intent = created.json()
            assert intent["id"].startswith("pi_") and intent["object"] == "payment_intent"
            assert intent["metadata"] == {"order": "F-1"} and intent["fee"] == 18
            assert "user_id" not in intent and "token_id" not in intent
            again = await ask(shop, 30_00, metadata={"order": "F-1"}, headers=headers)
            assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == intent["id"]
            paid = await settled(shop, intent["id"])
            assert paid["status"] == "succeeded" and paid["confirmed_via"] == "device", paid
            assert asked[0]["order_id"] == intent["id"] and asked[0]["merchant"] == "Corner Coffee"
            declined = (await ask(shop, 5_00)).json()
            refused = await settled(shop, declined["id"])
            assert refused["status"] == "canceled" and refused["cancellation_reason"] == "requested_by_customer"
        assert (await wallet(shop))["balance"] == 100_00 - 30_00
        (account,) = await hub.hub.payments.ledger.lookup_accounts([shop.merchant["account"]])
        assert account.balance == 30_00 - 18
        mine = (await shop.person.api.get("/api/v1/payment-intents?status=succeeded")).json()["items"]
        assert [i["id"] for i in mine] == [intent["id"]] and mine[0]["merchant"]["name"] == "Corner Coffee"
        assert "metadata" not in mine[0]
        home_id = (await shop.person.api.get("/api/v1/homes")).json()["items"][0]["id"]
        audit = (await shop.person.api.get(f"/api/v1/homes/{home_id}/audit")).json()["items"]
        assert {"payment_intent.created", "payment_intent.succeeded"} <= {a["action"] for a in audit}
        await assert_consistent(hub.hub.payments.ledger)


async def test_confirmed_by_the_person_in_the_console(tmp_path: Path, receiver: Receiver) -> None:
    async with running_hub(tmp_path, webhooks_allow_insecure=True) as hub:
        await ready(hub)
        shop = await open_shop(hub)  # the watch is offline: the person confirms in the console
        stranger = await sign_up(hub, "stranger")
        async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api), stranger.api:
            secret = (await shop.api.post("/api/v1/merchant/webhooks", json={"url": receiver.url("shop")})).json()
            intent = (await ask(shop, 12_00)).json()
            waiting = (await shop.person.api.get("/api/v1/payment-intents?status=requires_confirmation")).json()
            assert [i["id"] for i in waiting["items"]] == [intent["id"]]
            url = f"/api/v1/payment-intents/{intent['id']}"
            assert (await stranger.api.get(url)).status_code == 404
            assert (await stranger.api.post(f"{url}/confirm", headers=key())).status_code == 404
            missing = await shop.person.api.post(f"{url}/confirm")
            assert missing.status_code == 422 and "Idempotency-Key" in missing.json()["detail"]
            headers = {"Idempotency-Key": "console-1"}
            first = await shop.person.api.post(f"{url}/confirm", headers=headers)
            assert first.status_code == 200 and first.json()["status"] == "succeeded", first.text
            second = await shop.person.api.post(f"{url}/confirm", headers=headers)
            assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
            third = await shop.person.api.post(f"{url}/confirm", headers=key())
            assert third.status_code == 409 and "succeeded" in third.json()["detail"]
            assert (await wallet(shop))["balance"] == 100_00 - 12_00
            seen = (await shop.api.get(f"/api/v1/merchant/payment-intents/{intent['id']}")).json()
            assert seen["status"] == "succeeded" and seen["confirmed_via"] == "console"
            for _ in range(100):
                if len(receiver.to("shop")) >= 2:
                    break
                await asyncio.sleep(0.05)
            events = sorted((d.event["type"], d) for d in receiver.to("shop"))
            assert [t for t, _ in events] == ["payment_intent.created", "payment_intent.succeeded"]
            delivery = events[1][1]
            assert verify_signature(secret["secret"], delivery.headers["tosplus-signature"], delivery.body)
            assert delivery.event["data"]["id"] == intent["id"] and "user_id" not in delivery.event["data"]
            await assert_consistent(hub.hub.payments.ledger)


async def test_canceled_by_the_merchant_or_the_person_and_expired(hub: HubUnderTest) -> None:
    intents = await ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        first = (await ask(shop, 10_00)).json()
        cancel = f"/api/v1/merchant/payment-intents/{first['id']}/cancel"
        canceled = (await shop.api.post(cancel)).json()
        assert canceled["status"] == "canceled" and canceled["cancellation_reason"] == "requested_by_merchant"
        assert (await shop.api.post(cancel)).json() == canceled  # canceling twice answers the same
        confirm = await shop.person.api.post(f"/api/v1/payment-intents/{first['id']}/confirm", headers=key())
        assert confirm.status_code == 409
        second = (await ask(shop, 11_00)).json()
        mine = await shop.person.api.post(f"/api/v1/payment-intents/{second['id']}/cancel", headers=key())
        assert mine.json()["cancellation_reason"] == "requested_by_customer"
        paid = (await ask(shop, 12_00)).json()
        await shop.person.api.post(f"/api/v1/payment-intents/{paid['id']}/confirm", headers=key())
        late = await shop.api.post(f"/api/v1/merchant/payment-intents/{paid['id']}/cancel")
        assert late.status_code == 409 and "refund" in late.json()["detail"]
        other = await open_shop(hub)  # another merchant cannot see or cancel this one's intents
        async with contextlib.aclosing(other.person.api), contextlib.aclosing(other.api):
            assert (await other.api.get(f"/api/v1/merchant/payment-intents/{paid['id']}")).status_code == 404
        intents.expiry_s = 1
        doomed = (await ask(shop, 13_00)).json()
        assert await intents.sweep() == 0
        await asyncio.sleep(1.1)
        await intents.sweep()  # or the hub's own upkeep, which runs the same sweep every second, got there first
        expired = (await shop.api.get(f"/api/v1/merchant/payment-intents/{doomed['id']}")).json()
        assert expired["status"] == "canceled" and expired["cancellation_reason"] == "expired"
        too_late = await shop.person.api.post(f"/api/v1/payment-intents/{doomed['id']}/confirm", headers=key())
        assert too_late.status_code == 409
        assert (await wallet(shop))["balance"] == 100_00 - 12_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_insufficient_balance_and_limits(hub: HubUnderTest) -> None:
    await ready(hub)
    shop = await open_shop(hub, top_up=10_00)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        over = await ask(shop, 50_001)
        assert over.status_code == 402 and "per payment" in over.json()["detail"]
        intent = (await ask(shop, 20_00)).json()
        url = f"/api/v1/payment-intents/{intent['id']}"
        poor = await shop.person.api.post(f"{url}/confirm", headers=key())
        assert poor.status_code == 402 and "insufficient" in poor.json()["detail"]
        still = (await shop.person.api.get(url)).json()
        assert still["status"] == "requires_confirmation"
        assert still["last_payment_error"]["code"] == "insufficient_balance"
        top_up = {"amount": 1_000_00, "card_number": "4242424242424242"}
        assert (await shop.person.api.post("/api/v1/wallet/top-ups", json=top_up, headers=key())).status_code == 201
        paid = await shop.person.api.post(f"{url}/confirm", headers=key())
        assert paid.json()["status"] == "succeeded" and paid.json()["last_payment_error"] is None
        # The daily limit (800.00) counts what the device paid today: 20.00 + 450.00 + 450.00 is over it.
        big = (await ask(shop, 450_00)).json()
        assert (await shop.person.api.post(f"/api/v1/payment-intents/{big['id']}/confirm", headers=key())).is_success
        bigger = (await ask(shop, 450_00)).json()
        refused = await shop.person.api.post(f"/api/v1/payment-intents/{bigger['id']}/confirm", headers=key())
        assert refused.status_code == 402 and "daily limit" in refused.json()["detail"]
        assert (await wallet(shop))["balance"] == 10_00 + 1_000_00 - 20_00 - 450_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_device_signed_intents(hub: HubUnderTest) -> None:
    intents = await ready(hub)
    shop = await open_shop(hub)
    secret, device = await device_key(hub, shop), shop.watch["id"]
    tv = httpx.AsyncClient(base_url=str(hub.api.base_url))
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api), tv:
        game = {"amount": 6_00, "currency": "CNY", "merchant_id": shop.merchant["id"], "description": "Level 2"}
        body = json.dumps(game)
        raw = body.encode()

        async def create(headers: dict[str, str], idem: str = "game-1") -> httpx.Response:
            return await tv.post(DEVICE_INTENTS, content=raw, headers={**headers, "Idempotency-Key": idem})

        headers = signed(device, secret, "POST", DEVICE_INTENTS, raw)
        made = await create(headers)
        assert made.status_code == 201, made.text
        intent = made.json()
        assert intent["created_by"] == "device" and intent["merchant_id"] == shop.merchant["id"]
        replay = await create(headers)
        assert replay.status_code == 401 and "already used" in replay.json()["detail"]
        intents.seen_signatures.clear()  # as after a restart: the stored signature still refuses a replay
        forgotten = await create(headers, "game-2")
        assert forgotten.status_code == 401 and "already used" in forgotten.json()["detail"]
        # The answer was lost: the device signs the same request anew (a later second) with the same key.
        retry = await create(signed(device, secret, "POST", DEVICE_INTENTS, raw, int(time.time()) + 1))
        assert retry.json()["id"] == intent["id"] and retry.headers["Idempotent-Replayed"] == "true"
        wrong = await create(signed(device, b"\x00" * 32, "POST", DEVICE_INTENTS, raw), "game-3")
        assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
        stale = await create(signed(device, secret, "POST", DEVICE_INTENTS, raw, int(time.time()) - 301), "game-4")
        assert stale.status_code == 401 and "clock" in stale.json()["detail"]
        tampered = {**signed(device, secret, "POST", DEVICE_INTENTS, raw), "Idempotency-Key": "game-5"}
        cheaper = await tv.post(DEVICE_INTENTS, content=raw.replace(b"600", b"100"), headers=tampered)
        assert cheaper.status_code == 401
        unsigned = await tv.post(DEVICE_INTENTS, content=raw, headers={"Idempotency-Key": "game-6"})
        assert unsigned.status_code == 401
        garbled = {**signed(device, secret, "POST", DEVICE_INTENTS, raw), "TOSPLUS-Signature": "zz", **key()}
        assert (await tv.post(DEVICE_INTENTS, content=raw, headers=garbled)).status_code == 401
        nobody = json.dumps({**json.loads(body), "merchant_id": "mch_nobody"}).encode()
        unknown = {**signed(device, secret, "POST", DEVICE_INTENTS, nobody), "Idempotency-Key": "game-7"}
        assert (await tv.post(DEVICE_INTENTS, content=nobody, headers=unknown)).status_code == 422
        path = f"{DEVICE_INTENTS}/{intent['id']}"
        seen = await tv.get(path, headers=signed(device, secret, "GET", path, b""))
        assert seen.json()["status"] == "requires_confirmation"
        url = f"/api/v1/payment-intents/{intent['id']}/confirm"
        assert (await shop.person.api.post(url, headers=key())).json()["status"] == "succeeded"
        second = json.dumps({**json.loads(body), "description": "Level 3"}).encode()
        withdrawn = await tv.post(
            DEVICE_INTENTS, content=second, headers={**signed(device, secret, "POST", DEVICE_INTENTS, second), **key()}
        )
        cancel = f"{DEVICE_INTENTS}/{withdrawn.json()['id']}/cancel"
        gone = await tv.post(cancel, headers=signed(device, secret, "POST", cancel, b""))
        assert gone.json()["cancellation_reason"] == "requested_by_device"
        assert (await wallet(shop))["balance"] == 100_00 - 6_00
        await assert_consistent(hub.hub.payments.ledger)


async def test_a_crash_between_processing_and_succeeded_is_settled_from_the_ledger(hub: HubUnderTest) -> None:
    intents = await ready(hub)
    shop = await open_shop(hub)
    async with contextlib.aclosing(shop.person.api), contextlib.aclosing(shop.api):
        moved, unmoved = (await ask(shop, 7_00)).json(), (await ask(shop, 8_00)).json()
        merchant = hub.hub.payments.merchants[shop.merchant["id"]]
        table = payment_intents
        async with hub.hub.engine.begin() as conn:
            ids = [moved["id"], unmoved["id"]]
            await conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(status="processing"))
        # The hub stopped after the ledger batch of the first and before the batch of the second.
        await hub.hub.payments.ledger.create_transfers(_transfers(await intents.get(moved["id"]), merchant))
        assert await intents.recover() == 2
        assert (await intents.get(moved["id"]))["status"] == "succeeded"
        assert (await intents.get(unmoved["id"]))["status"] == "requires_confirmation"
        url = f"/api/v1/payment-intents/{unmoved['id']}/confirm"
        assert (await shop.person.api.post(url, headers=key())).json()["status"] == "succeeded"
        assert (await wallet(shop))["balance"] == 100_00 - 7_00 - 8_00
        await assert_consistent(hub.hub.payments.ledger)


def test_the_signature_is_hmac_sha256_of_timestamp_method_path_and_body() -> None:
    digest = sign(bytes(range(32)), 1_700_000_000, "post", "/api/v1/device-payments/payment-intents", b"{}")
    message = b"1700000000.POST./api/v1/device-payments/payment-intents.{}"
    assert digest == hmac.new(bytes(range(32)), message, hashlib.sha256).hexdigest()
