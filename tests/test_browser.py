"""The live page and the admin's panel in headless Chromium (Debian's), against daphne."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.live import LiveServer, create_node, logged_in
from tests.site_setup import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("GRAPHAPP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed (make chromium installs it)",
    ),
]

# Flags for a closed network: no background connections, no sandbox as root.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def signed_in_page(browser: Browser, server: LiveServer, path: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"{server.url}/accounts/login/?next={path}")
    await page.fill("#id_username", "admin")
    await page.fill("#id_password", PASSWORD)
    await page.click("input[type=submit]")
    await page.wait_for_selector('.graphapp-state[data-state="live"]')
    await page.wait_for_function(
        "document.querySelector('[data-stat=nodes]').textContent !== '\\u2013'"
    )
    return page


def shows_nodes(count: int) -> str:
    """A page condition: the nodes total reads ``count``."""
    return f"document.querySelector('[data-stat=nodes]').textContent.replace(/,/g, '') == {count}"


async def nodes_shown(page: Page) -> int:
    text = await page.text_content('[data-stat="nodes"]') or ""
    return int(text.replace(",", ""))


@pytest.mark.parametrize("path", ["/graph/live/", "/admin/graphapp/node/"])
async def test_page_updates_without_a_reload(
    browser: Browser, live_server_default: LiveServer, path: str
) -> None:
    page = await signed_in_page(browser, live_server_default, path)
    async with logged_in(live_server_default, "editor") as editor:
        current = (await editor.get("/graph/api/stats/")).json()["nodes"]
        await page.wait_for_function(shows_nodes(current))
        await page.evaluate("window.graphappTestMarker = 'kept'")
        await create_node(editor, live_server_default, node_type="DREAM", momentum=0.95)
    await page.wait_for_function(shows_nodes(current + 1))
    assert await nodes_shown(page) == current + 1
    labels = await page.locator('[data-bars="tiers"] .graphapp-bar__label').all_text_contents()
    assert labels == ["HOT", "WARM", "COLD"]
    assert await page.text_content(".graphapp-state") == "live"
    # Still the same document: a reload would have dropped this marker.
    assert await page.evaluate("window.graphappTestMarker") == "kept"
