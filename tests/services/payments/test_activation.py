"""Enabling payment with the activation code a device shows, and the device's side of payment over MQTT: its
token delivered and kept up to date (suspend, resume, delete, unbind), pay codes and confirmation prompts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.services.payments.ledger_support import assert_consistent
from tests.services.payments.test_counter import key
from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up, sticker_code
from tosplus.sdk import DeviceClient, DeviceError, PaymentError, PaymentRequest
from tosplus.services.homes import tables as homes_tables

LIMITS = {"per_payment_limit": 50_000, "daily_limit": 80_000, "confirm_above": 20_000}


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def home_with_watch(hub: HubUnderTest, person: Person) -> tuple[dict[str, Any], dict[str, Any]]:
    home = await person.create_home()
    watch = await hub.create_device("smartwatch")
    assert (await person.bind(home["id"], await sticker_code(hub, watch["id"]))).status_code == 201
    return home, watch


def client(hub: HubUnderTest, device: dict[str, Any]) -> DeviceClient:
    return DeviceClient(device["id"], device["secret"], host=hub.mqtt_host, port=hub.mqtt_port)


async def merchant_api(hub: HubUnderTest, name: str = "Corner Coffee") -> httpx.AsyncClient:
    merchant = (await hub.api.post("/api/v1/merchants", json={"name": name, "fee_bps": 60})).json()
    headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    return httpx.AsyncClient(base_url=str(hub.api.base_url), headers=headers, timeout=30)


async def micropay(shop: httpx.AsyncClient, code: str, amount: int, trade: str) -> httpx.Response:
    body = {"auth_code": code, "amount": amount, "out_trade_no": trade}
    return await shop.post("/api/v1/merchant/micropay", json=body, headers=key())


async def audit_of(person: Person, home_id: str) -> list[dict[str, Any]]:
    return list((await person.api.get(f"/api/v1/homes/{home_id}/audit?limit=200")).json()["items"])


async def test_a_watch_shows_a_code_gets_its_token_over_mqtt_and_pays(any_hub: HubUnderTest) -> None:
    hub = any_hub
    person = await sign_up(hub, "payer")
    watch = await hub.create_device("smartwatch")
    shop = await merchant_api(hub)
    async with contextlib.aclosing(person.api), contextlib.aclosing(shop), client(hub, watch) as dev:
        await dev.wait_connected(10)
        with pytest.raises(DeviceError, match="no home"):  # payment belongs to a home's devices
            await dev.request_payment_activation(timeout_s=5)
        home = await person.create_home()
        assert (await person.bind(home["id"], await sticker_code(hub, watch["id"]))).status_code == 201
        with pytest.raises(PaymentError, match="not been set up"):
            dev.pay_code()

        shown = await dev.request_payment_activation()
        assert shown["kind"] == "payment" and shown["uri"] == "tosplus:pay:" + shown["code"].replace("-", "")
        assert shown["qr_svg"].startswith("<svg") and shown["expires_at"] > 0
        other_home = await person.create_home("Other")
        binding = await person.bind(other_home["id"], shown["code"])  # an activation code binds nothing
        assert binding.status_code == 404
        seen: list[str] = []
        dev.payments.on_change(lambda status, _credentials: seen.append(status))

        activated = await person.api.post("/api/v1/payment-activations", json={"code": shown["uri"], **LIMITS})
        assert activated.status_code == 201, activated.text
        assert activated.json()["device_id"] == watch["id"] and "key" not in activated.json()
        await until(lambda: dev.payments.status == "active", "the token to reach the watch")
        credentials = dev.payments.credentials
        assert credentials is not None and seen == ["active"]
        token = hub.hub.payments.tokens[watch["id"]]
        assert (credentials.token_number, credentials.key) == (token.token_number, token.key)
        assert (credentials.confirm_above, credentials.per_payment_limit) == (20_000, 50_000)
        assert token.user_id == person.user_id
        assert await dev.payment_token() == credentials  # asked again: the same token

        topped = await person.api.post(
            "/api/v1/wallet/top-ups", json={"amount": 500_00, "card_number": "4242424242424242"}, headers=key()
        )
        assert topped.status_code == 201
        paid = await micropay(shop, dev.pay_code(), 12_50, "ACT-1")
        assert paid.status_code == 200 and paid.json()["state"] == "SUCCESS", paid.text

        # A large payment: the person is asked on the watch (the SDK's prompt) and confirms.
        asked: list[PaymentRequest] = []

        def prompt(request: PaymentRequest) -> bool:
            asked.append(request)
            return request.amount == 300_00

        dev.payments.on_confirm(prompt)
        waiting = await micropay(shop, dev.payments.next_pay_code(), 300_00, "ACT-2")
        assert waiting.json()["state"] == "USERPAYING", waiting.text
        await until(lambda: bool(asked), "the confirmation prompt")
        for _ in range(400):  # the device's answer crosses the broker and ingest: seconds on a loaded machine
            state = (await shop.get("/api/v1/merchant/orders/ACT-2")).json()["state"]
            if state != "USERPAYING":
                break
            await asyncio.sleep(0.05)
        assert state == "SUCCESS" and asked[0].merchant == "Corner Coffee" and asked[0].currency == "CNY"
        balance = (await person.api.get("/api/v1/wallet")).json()["balance"]
        assert balance == 500_00 - 12_50 - 300_00

        used = await person.api.post("/api/v1/payment-activations", json={"code": shown["code"], **LIMITS})
        assert used.status_code == 404 and "used" in used.json()["detail"]
        with pytest.raises(DeviceError, match="already enabled"):  # one token per device
            await dev.request_payment_activation(timeout_s=5)
        audit = await audit_of(person, home["id"])
        enabled = [a for a in audit if a["action"] == "payment.enabled"]
        assert len(enabled) == 1 and enabled[0]["detail"]["via"] == "activation_code"
        assert any(a["action"] == "payment.activation_refused" and a["detail"]["reason"] == "used" for a in audit)
        await assert_consistent(hub.hub.payments.ledger)


async def test_suspension_resumption_and_unbinding_reach_the_device(any_hub: HubUnderTest) -> None:
    hub = any_hub
    person = await sign_up(hub, "owner")
    home, watch = await home_with_watch(hub, person)
    shop = await merchant_api(hub)
    async with contextlib.aclosing(person.api), contextlib.aclosing(shop), client(hub, watch) as dev:
        await dev.wait_connected(10)
        assert await dev.payment_token() is None and dev.payments.status == "none"
        # Enabled in the console instead of with a code: the token reaches the device all the same.
        path = f"/api/v1/devices/{watch['id']}/payment-token"
        assert (await person.api.post(path, json=LIMITS)).status_code == 201
        await until(lambda: dev.payments.status == "active", "the token")
        number = dev.payments.credentials.token_number if dev.payments.credentials else None
        code = dev.pay_code()

        assert (await person.api.patch(path, json={"status": "suspended"})).status_code == 200
        await until(lambda: dev.payments.status == "suspended", "the suspension")
        with pytest.raises(PaymentError, match="suspended") as refused:
            dev.pay_code()
        assert refused.value.status == "suspended" and dev.payments.credentials is None
        assert (await micropay(shop, code, 1_00, "S-1")).status_code == 403  # the hub refuses it too

        assert (await person.api.patch(path, json={"status": "active", "confirm_above": 5_00})).status_code == 200
        await until(lambda: dev.payments.status == "active", "the resumption")
        assert dev.payments.credentials is not None
        assert (dev.payments.credentials.token_number, dev.payments.credentials.confirm_above) == (number, 5_00)
        dev.pay_code()

        unbound = await person.api.post(f"/api/v1/homes/{home['id']}/devices/{watch['id']}/unbind")
        assert unbound.status_code == 200
        await until(lambda: dev.payments.status == "deleted", "the deletion")
        assert watch["id"] not in hub.hub.payments.tokens
        with pytest.raises(PaymentError, match="turned off"):
            dev.pay_code()


async def test_who_may_activate_and_which_codes_are_refused(any_hub: HubUnderTest) -> None:
    hub = any_hub
    owner, guest, stranger = await sign_up(hub, "owner"), await sign_up(hub, "guest"), await sign_up(hub, "x")
    home, watch = await home_with_watch(hub, owner)
    async with contextlib.aclosing(owner.api), contextlib.aclosing(guest.api), contextlib.aclosing(stranger.api):
        invitation = await owner.api.post(
            f"/api/v1/homes/{home['id']}/invitations", json={"role": "guest", "devices": [watch["id"]]}
        )
        accepted = await guest.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
        assert accepted.status_code == 200, accepted.text
        base = str(hub.api.base_url)
        async with httpx.AsyncClient(base_url=base, auth=(watch["id"], watch["secret"])) as device:
            issued = await device.post("/device/v1/payment-activation")
            assert issued.status_code == 201, issued.text
            code = issued.json()["code"]
            assert issued.json()["qr_svg"].startswith("<svg")

            by_stranger = await stranger.api.post("/api/v1/payment-activations", json={"code": code})
            assert by_stranger.status_code == 404 and "no device is waiting" in by_stranger.json()["detail"]
            by_guest = await guest.api.post("/api/v1/payment-activations", json={"code": code})
            assert by_guest.status_code == 403 and "guests" in by_guest.json()["detail"]
            wrong = await owner.api.post("/api/v1/payment-activations", json={"code": "ZZZZ-ZZZZ"})
            assert wrong.status_code == 404 and "mistyped" in wrong.json()["detail"]
            silly = await owner.api.post("/api/v1/payment-activations", json={"code": code, "daily_limit": 0})
            assert silly.status_code == 422  # refused before the code is used
            assert watch["id"] not in hub.hub.payments.tokens

            # Expired: the same refusal as any other, with its own reason.
            late = await device.post("/device/v1/payment-activation")
            async with hub.hub.engine.begin() as conn:
                await conn.execute(
                    sa.update(homes_tables.binding_codes)
                    .where(homes_tables.binding_codes.c.kind == "payment")
                    .values(expires_at=1)
                )
            expired = await owner.api.post("/api/v1/payment-activations", json={"code": late.json()["code"]})
            assert expired.status_code == 404 and "expired" in expired.json()["detail"]

            fresh = (await device.post("/device/v1/payment-activation")).json()["code"]
            ok = await owner.api.post("/api/v1/payment-activations", json={"code": fresh.lower()})
            assert ok.status_code == 201, ok.text
            assert hub.hub.payments.tokens[watch["id"]].user_id == owner.user_id
            again = await device.post("/device/v1/payment-activation")
            assert again.status_code == 409 and "already enabled" in again.json()["detail"]
            creds = await device.post("/device/v1/payment-token")
            assert creds.status_code == 200
            assert creds.json()["token_number"] == hub.hub.payments.tokens[watch["id"]].token_number

        audit = await audit_of(owner, home["id"])
        reasons = [a["detail"]["reason"] for a in audit if a["action"] == "payment.activation_refused"]
        assert "expired" in reasons and any("guests" in r for r in reasons)
        assert not any(a["actor_id"] == stranger.user_id for a in audit)  # a stranger's attempt is not the home's

        # Guessing is limited as for binding codes: at most 10 misses (per account and per client address).
        statuses = []
        for n in range(11):
            miss = await stranger.api.post("/api/v1/payment-activations", json={"code": f"AAAA-AA{n:02d}"})
            statuses.append(miss.status_code)
        assert statuses.count(404) < 10 and statuses[-1] == 429
        assert int(miss.headers["Retry-After"]) > 0
