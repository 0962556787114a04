"""The web console in a real browser: Debian's Chromium driven by Playwright, against a real hub.

Playwright's own browser downloads are never used (no ``playwright install``): the tests launch
``/usr/bin/chromium``. Without it (or without the playwright package) they are skipped with the reason, and
fail instead when ``TOSPLUS_REQUIRE_SERVICES=1`` (CI).

Screenshots of each key step, and of every open page when a test fails, go to
``test-output/screenshots/<test>/`` (ignored by git); their paths are printed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hubs import HubUnderTest, running_hub
from tests.support.services import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# Chromium logs every non-2xx answer as a console error; those are expected (a refused refresh, a 404 page).
EXPECTED_CONSOLE = re.compile(r"Failed to load resource|status of (401|403|404|409|422|429)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


class Screens:
    """Numbered full-page screenshots of one test, and the pages to capture if it fails."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.pages: list[tuple[str, Any]] = []
        self.errors: list[str] = []
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)

    def watch(self, page: Any, label: str = "page") -> Any:
        """Capture ``page`` on failure and record its uncaught script errors."""
        self.pages.append((label, page))
        page.on("pageerror", lambda error: self.errors.append(f"{label}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{label} console: {message.text}")
                if message.type == "error" and not EXPECTED_CONSOLE.search(message.text)
                else None
            ),
        )
        return page

    async def shot(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def screens(request: pytest.FixtureRequest) -> AsyncIterator[Screens]:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    recorder = Screens(SCREENSHOTS / name)
    yield recorder
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for label, page in recorder.pages:
            try:
                await recorder.shot(page, f"failure-{label}")
            except Exception as exc:  # a closed page cannot be captured; say so and go on
                print(f"no failure screenshot of {label}: {exc}")
    elif recorder.errors:
        pytest.fail("script errors in the console:\n" + "\n".join(recorder.errors))


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubUnderTest]:
    async with running_hub(tmp_path) as test_hub:
        yield test_hub


def base_url(hub: HubUnderTest) -> str:
    return str(hub.api.base_url).rstrip("/")
