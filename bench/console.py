"""Web console benchmark: first load of a home with 200 devices, and live-update latency, in Chromium.

A hub in its own process; a person with one home whose devices (four products, five rooms) are bound with
binding codes as people do. Playwright drives Debian's Chromium (``/usr/bin/chromium``, headless).

* **First load**: a fresh browser context (empty cache, signed in by its session cookie) opens the home page;
  measured in the page from navigation start to the moment all device cards are in the document (a
  MutationObserver notes ``performance.now()``). Reference in the same run: navigation start to the load
  event of a blank static page served by the hub.
* **Live update**: one device publishes a reported value over MQTT; measured from just before the publish
  (wall clock in this process) to the moment the device's card shows the value (wall clock in the page:
  ``performance.timeOrigin + performance.now()``). Reference in the same run: the same publish to the twin
  event arriving at a bare WebSocket client of ``/api/v1/live`` (no browser).

    python bench/console.py
    python bench/console.py --devices 200 --loads 10 --updates 50
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import typer
import websockets
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RunningHub, hub_process, machine

console = Console()
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PRODUCTS = ["light", "smart-plug", "thermostat", "speaker"]
ROOMS = ["Living room", "Kitchen", "Bedroom", "Office", "Hall"]
PASSWORD = "benchmark password"

# In the page: when the cards are all there, and when a card's property shows a value.
PAGE_PROBES = """
window.__cards = { want: 0, at: null };
new MutationObserver((_, observer) => {
  const want = window.__cards.want;
  if (want && document.querySelectorAll('article.card').length >= want && window.__cards.at === null) {
    window.__cards.at = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
window.__arm = (deviceId, prop, value) => {
  const el = document.querySelector(`article.card[data-device-id="${deviceId}"] [data-prop="${prop}"]`);
  window.__armed = new Promise((resolve) => {
    const check = () => {
      if (el.dataset.value === value) {
        observer.disconnect();
        resolve(performance.timeOrigin + performance.now());
      }
    };
    const observer = new MutationObserver(check);
    observer.observe(el, { attributes: true, attributeFilter: ['data-value'] });
  });
};
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def setup(hub: RunningHub, count: int) -> tuple[str, str, str, dict[str, str]]:
    """A person, a home, ``count`` devices bound to it; returns e-mail, home id, a light's id, secrets."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    secrets: dict[str, str] = {}
    with (
        hub.client() as admin,
        httpx.Client(base_url=hub.api, timeout=60) as anonymous,
        Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress,
    ):
        created = anonymous.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Bench"})
        created.raise_for_status()
        session = anonymous.post("/api/v1/auth/session", json={"email": email, "password": PASSWORD})
        session.raise_for_status()
        person = {"Authorization": f"Bearer {session.json()['access_token']}"}
        home = anonymous.post("/api/v1/homes", json={"name": "Bench home", "rooms": ROOMS}, headers=person).json()
        rooms = [r["id"] for r in home["rooms"]]
        task = progress.add_task(f"binding {count} devices", total=count)
        for i in range(count):
            product = PRODUCTS[i % len(PRODUCTS)]
            device = admin.post("/api/v1/devices", json={"product_id": product, "name": f"{product} {i + 1}"}).json()
            secrets[device["id"]] = device["secret"]
            code = admin.post(f"/api/v1/devices/{device['id']}/binding-codes", json={"valid_days": 1}).json()["code"]
            bound = anonymous.post(
                f"/api/v1/homes/{home['id']}/devices/bind",
                json={"code": code, "room_id": rooms[i % len(rooms)]},
                headers=person,
            )
            bound.raise_for_status()
            progress.advance(task)
    light = next(iter(secrets))  # the first device is a light (PRODUCTS[0])
    return email, home["id"], light, secrets


async def signed_in_context(browser: Any, hub: RunningHub, email: str) -> Any:
    """A fresh context (empty cache) holding the person's session cookie, as after signing in."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    response = await context.request.post(
        f"{hub.api}/api/v1/auth/session",
        data=json.dumps({"email": email, "password": PASSWORD}),
        headers={"Content-Type": "application/json"},
    )
    assert response.ok, await response.text()
    await context.add_init_script(PAGE_PROBES)
    return context


async def first_loads(
    browser: Any, hub: RunningHub, email: str, home_id: str, count: int, loads: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cards": [], "blank": [], "state": []}
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("first loads", total=loads)
        for _ in range(loads):
            context = await signed_in_context(browser, hub, email)
            page = await context.new_page()
            # Reference: a blank static page from the same hub, in a fresh context too.
            await page.goto(f"{hub.api}/console/blank.html", wait_until="load")
            nav = await page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            out["blank"].append(float(nav))
            await context.close()

            context = await signed_in_context(browser, hub, email)
            await context.add_init_script(f"window.__cards.want = {count};")
            page = await context.new_page()
            await page.goto(f"{hub.api}/console/#/homes/{home_id}")
            await page.wait_for_function("() => window.__cards.at !== null", timeout=30_000)
            out["cards"].append(float(await page.evaluate("window.__cards.at")))
            # The cards in view have their twin and latest telemetry (fetched lazily, a few at a time).
            await page.wait_for_function(
                """() => [...document.querySelectorAll('article.card')]
                    .filter((c) => c.getBoundingClientRect().top < innerHeight)
                    .every((c) => c.dataset.loaded === 'true')""",
                timeout=30_000,
            )
            out["state"].append(float(await page.evaluate("performance.now()")))
            await context.close()
            progress.advance(task)
    return out


async def live_updates(
    browser: Any, hub: RunningHub, email: str, home_id: str, light: str, secret: str, updates: int
) -> tuple[list[float], list[float]]:
    context = await signed_in_context(browser, hub, email)
    page = await context.new_page()
    await page.goto(f"{hub.api}/console/#/homes/{home_id}")
    await page.locator(f"article.card[data-device-id='{light}'] [data-prop=brightness]").wait_for()
    await page.locator("#live-status.live-live").wait_for()
    browser_ms: list[float] = []
    reference_ms: list[float] = []
    mqtt = aiomqtt.Client("127.0.0.1", hub.mqtt_port, identifier=light, username=light, password=secret)
    live_url = f"ws://{hub.api.removeprefix('http://')}/api/v1/live?token={hub.token}&type=twin&device_id={light}"
    async with mqtt, websockets.connect(live_url) as ws:
        await mqtt.publish(f"tos/v1/{light}/status", b"online", qos=1, retain=True)
        await ws.recv()  # hello
        with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("live updates", total=updates * 2)
            for i in range(updates):
                value = 1 + (i % 99)
                await page.evaluate("([d, p, v]) => window.__arm(d, p, v)", [light, "brightness", str(value)])
                sent = time.time() * 1000
                await mqtt.publish(f"tos/v1/{light}/twin/reported", json.dumps({"brightness": value}).encode(), qos=1)
                shown = await page.evaluate("window.__armed")
                browser_ms.append(float(shown) - sent)
                progress.advance(task)
                await asyncio.sleep(0.05)
            # Reference: the same publish seen by a bare WebSocket client (the browser page is still open).
            for i in range(updates):
                value = 1 + ((i + 50) % 99)
                sent = time.time() * 1000
                await mqtt.publish(f"tos/v1/{light}/twin/reported", json.dumps({"brightness": value}).encode(), qos=1)
                while True:
                    event = json.loads(await ws.recv())
                    if event.get("type") == "twin" and event["data"]["reported"]["state"].get("brightness") == value:
                        break
                reference_ms.append(time.time() * 1000 - sent)
                progress.advance(task)
                await asyncio.sleep(0.05)
    await context.close()
    return browser_ms, reference_ms


def main(
    devices: int = typer.Option(200, help="Devices in the home"),
    loads: int = typer.Option(10, help="First loads to measure (each in a fresh context)"),
    updates: int = typer.Option(50, help="Live updates to measure"),
) -> None:
    from playwright.async_api import async_playwright

    async def run(hub: RunningHub) -> None:
        email, home_id, light, secrets = setup(hub, devices)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                load = await first_loads(browser, hub, email, home_id, devices, loads)
                live, reference = await live_updates(browser, hub, email, home_id, light, secrets[light], updates)
            finally:
                await browser.close()
        table = Table(title=f"Console, home with {devices} devices — {machine()}")
        for column in ("measure", "p50", "p99 / max", "reference p50"):
            table.add_column(column)
        table.add_row(
            f"first load → {devices} cards (n={loads})",
            f"{statistics.median(load['cards']):.0f} ms",
            f"{max(load['cards']):.0f} ms",
            f"blank page {statistics.median(load['blank']):.0f} ms",
        )
        table.add_row(
            "first load → cards in view have state",
            f"{statistics.median(load['state']):.0f} ms",
            f"{max(load['state']):.0f} ms",
            "",
        )
        table.add_row(
            f"live update, publish → card (n={updates})",
            f"{percentile(live, 0.5):.1f} ms",
            f"{percentile(live, 0.99):.1f} ms",
            f"bare WebSocket {percentile(reference, 0.5):.1f} ms (p99 {percentile(reference, 0.99):.1f})",
        )
        console.print(table)
        print(  # the row for BENCHMARKS.md, unwrapped
            f"| `python bench/console.py --devices {devices} --loads {loads} --updates {updates}` "
            f"| {statistics.median(load['cards']):.0f} ms (max {max(load['cards']):.0f}) "
            f"| {statistics.median(load['state']):.0f} ms "
            f"| {statistics.median(load['blank']):.0f} ms "
            f"| {percentile(live, 0.5):.1f} / {percentile(live, 0.99):.1f} ms "
            f"| {percentile(reference, 0.5):.1f} / {percentile(reference, 0.99):.1f} ms |"
        )

    with hub_process() as hub:
        asyncio.run(run(hub))


if __name__ == "__main__":
    typer.run(main)
