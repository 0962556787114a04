"""The wallet and merchant pages in a real browser against a real hub: a person tops up, enables payment on a
simulated watch, sets its limits, suspends it (a code shown before is then refused at the counter), resumes it,
shows its pay code and a merchant charges it, confirms an app's payment request; the merchant's owner sees the
orders, refunds part of one (and is told in words when asking too much), and reads and downloads the statement.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.console.conftest import Screens, base_url
from tests.console.helpers import person_api, sign_in_in_browser, simulated, sticker_code
from tests.support.hubs import HubUnderTest

PHONE = {"width": 390, "height": 844}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
CARD = "4242 4242 4242 4242"


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@contextlib.asynccontextmanager
async def merchant_api(hub: HubUnderTest, name: str, owner_id: str | None) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    created = await hub.api.post("/api/v1/merchants", json={"name": name, "owner_id": owner_id})
    assert created.status_code == 201, created.text
    merchant = created.json()
    headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    async with httpx.AsyncClient(base_url=str(hub.api.base_url), headers=headers, timeout=30) as till:
        yield merchant, till


async def micropay(till: httpx.AsyncClient, code: str, amount: int, trade: str) -> httpx.Response:
    body = {"auth_code": code, "amount": amount, "out_trade_no": trade, "description": "flat white"}
    return await till.post("/api/v1/merchant/micropay", json=body, headers=key())


async def stat(page: Any, name: str) -> int:
    return int(await page.locator(f"[data-stat={name}]").get_attribute("data-fen"))


async def no_sideways_scroll(page: Any, screens: Screens, name: str) -> None:
    await page.set_viewport_size(PHONE)
    await page.wait_for_timeout(200)  # charts follow the width
    overflow = await page.evaluate(OVERFLOW)
    shot = await screens.shot(page, f"phone-{name}")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at 390px wide (see {shot})"
    await page.set_viewport_size({"width": 1280, "height": 900})


async def test_wallet_top_up_enable_suspend_pay_code_and_history(
    hub: HubUnderTest, browser: Any, screens: Screens
) -> None:
    base = base_url(hub)
    email, person = await person_api(hub, "Alex")
    async with (
        contextlib.aclosing(person),
        merchant_api(hub, "Corner Coffee", None) as (_merchant, till),
        simulated(hub, "smartwatch", name="Alex's watch") as (watch, _sim),
    ):
        home = (await person.post("/api/v1/homes", json={"name": "Flat", "rooms": ["Hall"]})).json()
        bound = await person.post(
            f"/api/v1/homes/{home['id']}/devices/bind", json={"code": await sticker_code(hub, watch["id"])}
        )
        assert bound.status_code == 201, bound.text
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = screens.watch(await context.new_page(), "alex")
        await sign_in_in_browser(page, base, email)
        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
        await page.get_by_role("heading", name="Wallet").wait_for()
        await page.locator("[data-stat=balance][data-fen='0']").wait_for()
        await page.get_by_text("No device pays from this wallet yet.").wait_for()

        # Top up: a typo in the amount and a card number with a wrong check digit are explained in words.
        top_up = page.get_by_role("form", name="Top up")
        await top_up.get_by_label("Card number").fill(CARD)
        await top_up.get_by_label("Amount (¥)").fill("3OO")
        await top_up.get_by_role("button", name="Top up").click()
        await top_up.get_by_role("alert").get_by_text("Amount: enter an amount in yuan, like 12.50").wait_for()
        await top_up.get_by_label("Card number").fill("4242 4242 4242 4241")
        await top_up.get_by_label("Amount (¥)").fill("300")
        await top_up.get_by_role("button", name="Top up").click()
        await top_up.get_by_role("alert").get_by_text("not a valid card number").wait_for()
        await top_up.get_by_label("Card number").fill(CARD)
        await top_up.get_by_role("button", name="Top up").click()
        await page.locator("[data-stat=balance][data-fen='30000']").wait_for()
        assert await page.locator("[data-stat=balance] b").inner_text() == "¥300.00"
        assert (await person.get("/api/v1/wallet")).json()["balance"] == 300_00  # charged once, not three times
        await screens.shot(page, "topped-up")

        # Enable payment on the watch from its page.
        await page.goto(f"{base}/console/#/devices/{watch['id']}")
        enable = page.get_by_role("form", name="Enable payment")
        await enable.get_by_label("Per payment").fill("50")
        await enable.get_by_label("Per day").fill("80")
        await enable.get_by_label("Confirm on the device above").fill("40")
        await enable.get_by_role("button", name="Enable payment").click()
        await page.locator("[data-payment-status=active]").wait_for()
        await screens.shot(page, "payment-enabled")
        await page.get_by_role("link", name="Manage it in the wallet").click()

        # Listed with its limits; the limit per payment changed here reaches the hub.
        card = page.locator(f"article.card[data-device-id='{watch['id']}']")
        await card.wait_for()
        assert await card.get_attribute("data-status") == "active"
        assert await card.locator("[data-limit=per_payment]").inner_text() == "¥50.00"
        assert await card.locator("[data-limit=daily]").inner_text() == "¥80.00"
        assert await card.locator("[data-limit=spent_today]").inner_text() == "¥0.00 of ¥80.00"
        await card.get_by_role("button", name="Change limits").click()
        limits = card.get_by_role("form", name="Limits of Alex's watch")
        await limits.get_by_label("Per payment").fill("60")
        await limits.get_by_role("button", name="Save limits").click()
        await card.locator("[data-limit=per_payment]", has_text="¥60.00").wait_for()
        token = (await person.get(f"/api/v1/devices/{watch['id']}/payment-token")).json()
        assert (token["per_payment_limit"], token["daily_limit"], token["confirm_above"]) == (60_00, 80_00, 40_00)

        # The pay code, as the watch's screen would show it.
        await card.get_by_role("button", name="Show pay code").click()
        dialog = page.get_by_role("dialog", name="Pay code")
        digits = dialog.locator(".code-digits[data-code]")
        await digits.wait_for()
        first_code = await digits.get_attribute("data-code")
        assert re.fullmatch(r"28\d{16}", first_code or ""), first_code
        assert (await digits.inner_text()).replace(" ", "") == first_code
        assert (await dialog.locator("img.qr").get_attribute("src") or "").startswith("data:image/svg+xml")
        assert (await dialog.locator("img.barcode").get_attribute("src") or "").startswith("data:image/svg+xml")
        assert await dialog.locator("img.barcode").evaluate("i => i.complete && i.naturalWidth > 100")
        await dialog.get_by_text(re.compile(r"A new code in \d+ s")).wait_for()
        await screens.shot(page, "pay-code")
        await dialog.get_by_role("button", name="Close").click()

        # Suspended: the code shown before is refused at the counter, and no code can be shown.
        await card.get_by_role("button", name="Suspend").click()
        await page.locator("dialog.ask").get_by_role("button", name="Suspend").click()
        await page.locator(f"article.card[data-device-id='{watch['id']}'][data-status=suspended]").wait_for()
        assert await card.get_by_role("button", name="Show pay code").is_disabled()
        refused = await micropay(till, first_code or "", 25_50, "A-1")
        assert refused.status_code == 403 and "suspended" in refused.json()["detail"], refused.text
        await screens.shot(page, "suspended")

        # Resumed: a new code is shown, the merchant charges it, and the wallet shows the payment by itself.
        await card.get_by_role("button", name="Resume").click()
        await page.locator(f"article.card[data-device-id='{watch['id']}'][data-status=active]").wait_for()
        await card.get_by_role("button", name="Show pay code").click()
        await digits.wait_for()
        code = await digits.get_attribute("data-code")
        assert code and code != first_code  # the refused one was spent
        paid = await micropay(till, code, 25_50, "A-2")
        assert paid.status_code == 200 and paid.json()["state"] == "SUCCESS", paid.text
        await dialog.locator(f".code-digits:not([data-code='{code}'])").wait_for(timeout=10_000)  # the next code
        await page.locator("[data-stat=balance][data-fen='27450']").wait_for(timeout=10_000)
        await screens.shot(page, "paid-with-shown-code")
        await dialog.get_by_role("button", name="Close").click()
        row = page.locator("#wallet-history tbody tr").first
        assert "Payment · Corner Coffee · flat white" in await row.inner_text()
        assert await row.locator("[data-label=Amount]").inner_text() == "-¥25.50"
        assert await row.locator("[data-label='Balance after']").inner_text() == "¥274.50"
        assert await row.locator("[data-label=Device]").inner_text() == "Alex's watch"
        assert await card.locator("[data-limit=spent_today]").inner_text() == "¥25.50 of ¥80.00"
        assert await page.locator("#view .chart canvas").count() >= 1  # the balance over the history
    watch_id = watch["id"]

    async with merchant_api(hub, "Game Store", None) as (_store, store):
        # An app's payment request waits for the person (the watch is offline now); confirmed in the console.
        asked = await store.post(
            "/api/v1/merchant/payment-intents",
            json={"amount": 8_00, "currency": "CNY", "device_id": watch_id, "description": "Extra lives"},
            headers=key(),
        )
        assert asked.status_code == 201, asked.text
        await page.get_by_role("button", name="Refresh").click()
        waiting = page.locator(f"[data-intent-id='{asked.json()['id']}']")
        await waiting.wait_for()
        assert (
            "Extra lives"
            in await page.get_by_role("heading", name="Waiting for your confirmation").locator("..").inner_text()
        )
        await waiting.get_by_role("button", name="Confirm").click()
        await page.locator("[data-stat=balance][data-fen='26650']").wait_for()
        assert (await store.get(f"/api/v1/merchant/payment-intents/{asked.json()['id']}")).json()[
            "status"
        ] == "succeeded"
        await page.get_by_role("heading", name="Waiting for your confirmation").wait_for(state="hidden")
        history = page.locator("#wallet-history tbody tr")
        await history.first.filter(has_text="Game Store · Extra lives").wait_for()
        assert await history.count() == 3  # the payment at the counter, the top-up, this one
        await screens.shot(page, "intent-confirmed")
        await no_sideways_scroll(page, screens, "wallet")

    # Removed: the device no longer pays, and its page offers to enable payment again.
    await card.get_by_role("button", name="Remove").click()
    await page.locator("dialog.ask").get_by_role("button", name="Remove").click()
    await page.get_by_text("No device pays from this wallet yet.").wait_for()
    await page.goto(f"{base}/console/#/devices/{watch_id}")
    await page.get_by_role("form", name="Enable payment").wait_for()
    await context.close()


async def test_merchant_owner_refunds_in_the_browser_and_reads_the_statement(
    hub: HubUnderTest, browser: Any, screens: Screens, tmp_path: Path
) -> None:
    base = base_url(hub)
    owner_email, owner = await person_api(hub, "Mei")
    payer_email, payer = await person_api(hub, "Payer")
    watch = await hub.create_device("smartwatch", name="Payer's watch")
    async with contextlib.aclosing(owner), contextlib.aclosing(payer):
        owner_id = (await owner.get("/api/v1/me")).json()["id"]
        home = (await payer.post("/api/v1/homes", json={"name": "Home", "rooms": []})).json()
        bind = {"code": await sticker_code(hub, watch["id"])}
        assert (await payer.post(f"/api/v1/homes/{home['id']}/devices/bind", json=bind)).status_code == 201
        limits = {"per_payment_limit": 150_00, "daily_limit": 500_00, "confirm_above": 200_00}
        assert (await payer.post(f"/api/v1/devices/{watch['id']}/payment-token", json=limits)).status_code == 201
        topped = await payer.post("/api/v1/wallet/top-ups", json={"amount": 400_00, "card_number": CARD}, headers=key())
        assert topped.status_code == 201
        async with merchant_api(hub, "Mei's Noodles", owner_id) as (merchant, till):

            async def code() -> str:
                return str((await payer.get(f"/api/v1/devices/{watch['id']}/payment-token/pay-code")).json()["code"])

            assert (await micropay(till, await code(), 100_00, "N-1")).json()["state"] == "SUCCESS"
            assert (await micropay(till, await code(), 20_00, "N-2")).json()["state"] == "SUCCESS"
            assert (await micropay(till, await code(), 300_00, "N-3")).status_code == 402  # over the limit: CLOSED

            context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page = screens.watch(await context.new_page(), "owner")
            await sign_in_in_browser(page, base, owner_email)
            await page.get_by_role("navigation", name="Main").get_by_role("link", name="Merchants").click()
            await page.get_by_role("link", name="Mei's Noodles").click()
            await page.get_by_role("heading", name="Mei's Noodles").wait_for()
            orders = page.locator("#merchant-orders")
            n1, n2, n3 = (orders.locator(f"tr[data-order={n}]") for n in ("N-1", "N-2", "N-3"))
            await n1.wait_for()
            assert await n1.locator("[data-state=SUCCESS]").get_by_text("Paid").count() == 1
            assert await n3.locator("[data-state=CLOSED]").get_by_text("Refused").count() == 1
            assert await n3.get_by_role("button", name="Refund").count() == 0  # nothing was paid
            fee = 100_00 * 60 // 10_000 + 20_00 * 60 // 10_000
            assert await page.locator("[data-stat=balance]").get_attribute("data-fen") == str(120_00 - fee)
            await screens.shot(page, "merchant-orders")

            # Asking more than was paid is explained before anything is sent; a part is refunded once.
            await n1.get_by_role("button", name="Refund").click()
            form = page.get_by_role("form", name="Refund order N-1")
            await form.get_by_label("Amount (¥)").fill("150")
            await form.get_by_role("button", name="Refund").click()
            await form.get_by_role("alert").get_by_text("more than was paid and not yet refunded").wait_for()
            assert "¥100.00" in await form.get_by_role("alert").inner_text()
            await form.get_by_label("Amount (¥)").fill("30.50")
            await form.get_by_label("Reason").fill("cold noodles")
            await screens.shot(page, "refund-dialog")
            await form.get_by_role("button", name="Refund").click()
            await n1.get_by_text("Partly refunded").wait_for()
            assert await n1.locator("[data-label=Refunded]").inner_text() == "¥30.50"
            refunds = page.locator("#merchant-refunds tbody tr")
            await refunds.first.wait_for()
            assert await refunds.count() == 1
            assert "cold noodles" in await refunds.first.inner_text() and "¥30.50" in await refunds.first.inner_text()
            own = (await till.get("/api/v1/merchant/orders/N-1/refunds")).json()
            assert own["refunded_amount"] == 30_50 and len(own["items"]) == 1
            assert (await payer.get("/api/v1/wallet")).json()["balance"] == 400_00 - 120_00 + 30_50

            # The hub's own refusal, in words: the till refunded most of N-2 while the dialog was open.
            await n2.get_by_role("button", name="Refund").click()
            form2 = page.get_by_role("form", name="Refund order N-2")
            till_refund = {"amount": 15_00, "out_refund_no": "till-1"}
            assert (
                await till.post("/api/v1/merchant/orders/N-2/refunds", json=till_refund, headers=key())
            ).status_code == 201
            await form2.get_by_label("Amount (¥)").fill("10")
            await form2.get_by_role("button", name="Refund").click()
            await form2.get_by_role("alert").get_by_text("more than is left to refund").wait_for()
            await screens.shot(page, "refund-refused-by-the-hub")
            await form2.get_by_role("button", name="Cancel").click()

            # Today's statement: the same closing balance as the merchant's API, payments by hour, and the CSV.
            today = datetime.now(UTC).date().isoformat()
            statement = (await till.get(f"/api/v1/merchant/statements/{today}")).json()
            await page.get_by_role("button", name="Refresh").click()
            closing = page.locator("#merchant-statement [data-total=closing]")
            await page.locator(
                f"#merchant-statement [data-total=closing]:text-is('{_yuan(statement['closing_balance'])}')"
            ).wait_for()
            assert await closing.inner_text() == _yuan(120_00 - fee - 30_50 - 15_00 + 18 + 9)  # fees given back
            counts = await page.locator("#merchant-statement .bar").evaluate_all(
                "bars => bars.map(b => +b.dataset.count)"
            )
            assert len(counts) == 24 and sum(counts) == 2  # two paid orders today, in their hours (UTC)
            assert await page.locator("#merchant-statement tbody tr").count() == len(statement["movements"])
            async with page.expect_download() as download_info:
                await page.get_by_role("button", name="Download CSV").click()
            download = await download_info.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            their_csv = await till.get(f"/api/v1/merchant/statements/{today}", params={"format": "csv"})
            assert saved.read_bytes() == their_csv.content and download.suggested_filename.endswith(f"{today}.csv")
            await screens.shot(page, "statement")
            await no_sideways_scroll(page, screens, "merchant")

            # Someone else is told the merchant does not exist.
            other_context = await browser.new_context(viewport={"width": 1280, "height": 900})
            other = screens.watch(await other_context.new_page(), "payer")
            await sign_in_in_browser(other, base, payer_email, then=f"/merchants/{merchant['id']}")
            await other.get_by_text("This merchant does not exist, or you do not run it.").wait_for()
            assert await other.get_by_role("navigation", name="Main").get_by_role("link", name="Merchants").is_hidden()
            await screens.shot(other, "not-yours")
            await other_context.close()
            await context.close()


def _yuan(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
