"""The pages' history chart and replayed feed, in headless Chromium against daphne."""

from __future__ import annotations

from collections.abc import Callable

from playwright.async_api import BrowserContext, Page

from tests import test_browser
from tests.live import LiveServer, create_node, logged_in
from tests.test_browser import feed_entry, shows_nodes, sign_in, until_live

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the suite's Chromium and profile, as fixtures here
context = test_browser.context

# Thirty nodes, then one recorded point a minute over the last half hour, as a
# server would have left them: the node count rising from 1 to 30.
SEED = """
import datetime
from graphapp.models import HistoryPoint, Node
Node.objects.bulk_create([Node(content=f"seed {i}", node_type="FACT") for i in range(30)])
now = datetime.datetime.now(datetime.UTC)
for i in range(1, 31):
    at = now - datetime.timedelta(minutes=31 - i)
    HistoryPoint.objects.create(
        version=-100 + i, at_ms=int(at.timestamp() * 1000), nodes=i, edges=0,
        tiers={"HOT": 0, "WARM": 0, "COLD": i},
        types={"FACT": i, "CONCEPT": 0, "CODE": 0, "DREAM": 0, "ENTITY": 0},
    )
"""


async def samples_drawn(page: Page) -> int:
    return int(await page.get_attribute("[data-chart-line]", "data-samples") or 0)


async def test_a_page_opened_after_half_an_hour_of_history_draws_it_at_once(
    context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    seeded = server.manage("shell", "-c", SEED)
    assert seeded.returncode == 0, seeded.stderr
    page = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    # Ten minutes by default: the last ten of the thirty points, and the line to now.
    ten_minutes = await samples_drawn(page)
    await page.select_option("[data-chart-range]", "3600")
    hour = await samples_drawn(page)
    summary = await page.text_content("[data-chart-summary]")
    caption = await page.text_content("[data-chart-range-label]")
    assert 9 <= ten_minutes <= 14
    assert hour >= 31  # every seeded point, the current snapshot and now
    assert summary is not None
    assert summary.startswith("From 1 to 30 nodes")
    assert caption == "1 hour"
    # The same page goes on drawing what arrives.
    async with logged_in(server, "editor") as editor:
        await create_node(editor, server, content="after the history")
    await page.wait_for_function(shows_nodes(31))
    await page.wait_for_function(
        "document.querySelector('[data-chart-summary]').textContent.startsWith('From 1 to 31')"
    )


async def test_changes_made_while_offline_show_once_in_the_feed_when_back(
    context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    page = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    async with logged_in(server, "editor") as editor:
        before = await create_node(editor, server, content="seen live", node_type="CODE")
        await page.locator(feed_entry("created", before["id"])).wait_for()
        # Offline mode keeps an open connection open: the server's restart
        # meanwhile drops it, and the browser cannot come back until online.
        await context.set_offline(True)
        port = server.port
        server.stop()
        await page.wait_for_selector('.graphapp-state[data-state="offline"]')
        server.start(setup=False, port=port)
    async with logged_in(server, "editor") as editor:
        missed = [await create_node(editor, server, content=f"while offline {i}") for i in range(2)]
        await context.set_offline(False)
        await page.wait_for_selector('.graphapp-state[data-state="live"]')
        for node in missed:
            await page.locator(feed_entry("created", node["id"])).wait_for()
        after = await create_node(editor, server, content="live again", node_type="DREAM")
        await page.locator(feed_entry("created", after["id"])).wait_for()
    for node in (before, *missed, after):
        assert await page.locator(feed_entry("created", node["id"])).count() == 1
    # Nothing was lost, so the page does not say that changes are not listed.
    assert await page.locator('[data-feed] li[data-kind="note"]').count() == 0
    await page.wait_for_function(shows_nodes(4))
