"""The live page and the admin's panel in headless Chromium (Debian's), against daphne."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.views.i18n import JavaScriptCatalog
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.live import ROOT, LiveServer, create_node, logged_in, post_json
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


# build/screenshots on every run; `make screenshots` writes the README's, in docs/.
SCREENSHOTS = Path(os.environ.get("GRAPHAPP_SCREENSHOTS", ROOT / "build" / "screenshots"))


async def sign_in(page: Page, server: LiveServer, path: str, username: str = "admin") -> Page:
    await page.goto(f"{server.url}/accounts/login/?next={path}")
    await page.fill("#id_username", username)
    await page.fill("#id_password", PASSWORD)
    await page.click("input[type=submit]")
    return page


async def until_live(page: Page) -> Page:
    await page.wait_for_selector('.graphapp-state[data-state="live"]')
    await page.wait_for_function(
        "document.querySelector('[data-stat=nodes]').textContent !== '\\u2013'"
    )
    return page


async def signed_in_page(browser: Browser, server: LiveServer, path: str) -> Page:
    return await until_live(await sign_in(await browser.new_page(), server, path))


async def open_live(context: BrowserContext, server: LiveServer, path: str) -> Page:
    """Another tab of a signed-in browser."""
    page = await context.new_page()
    await page.goto(f"{server.url}{path}")
    return await until_live(page)


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


# -- helpers for the scenario tests ------------------------------------------------


async def api_stats(server: LiveServer) -> dict[str, Any]:
    async with logged_in(server, "viewer") as viewer:
        stats: dict[str, Any] = (await viewer.get("/graph/api/stats/")).json()
        return stats


async def open_streams(server: LiveServer) -> int:
    async with logged_in(server, "admin") as admin:
        streams: int = (await admin.get("/graph/api/health/")).json()["streams"]
        return streams


async def feed_keys(page: Page) -> list[str]:
    keys: list[str] = await page.eval_on_selector_all(
        "[data-feed] li[data-key]", "items => items.map(item => item.dataset.key)"
    )
    return keys


def feed_entry(kind: str, node_id: int | str) -> str:
    return f'[data-feed] li[data-kind="{kind}"][data-node="{node_id}"]'


async def admin_form_save(page: Page, server: LiveServer, path: str, **fields: str) -> None:
    await page.goto(f"{server.url}{path}")
    for name, value in fields.items():
        if name == "node_type":
            await page.select_option("#id_node_type", value)
        else:
            await page.fill(f"#id_{name}", value)
    await page.click("input[name=_save]")
    await page.wait_for_selector(".messagelist .success")


def screenshot_path(name: str, *, dark: bool) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}-{'dark' if dark else 'light'}.png"


async def screenshot(page: Page, name: str, *, dark: bool) -> None:
    await page.emulate_media(color_scheme="dark" if dark else "light")
    await page.screenshot(path=screenshot_path(name, dark=dark))
    await page.emulate_media(color_scheme="light")


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """One browser profile: its tabs share cookies and the shared stream worker."""
    made = await browser.new_context(viewport={"width": 1100, "height": 900})
    yield made
    await made.close()


# -- the scenarios -------------------------------------------------------------------


async def test_admin_changes_show_on_the_live_page_and_the_admin_list(
    browser: Browser, context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    seeded = server.manage("graph_seed", "--nodes", "120", "--edges", "200", "--seed", "5")
    assert seeded.returncode == 0, seeded.stderr
    live = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    await live.wait_for_function(shows_nodes(120))
    listing = await open_live(context, server, "/admin/graphapp/node/")
    hot_before = (await api_stats(server))["tiers"]["HOT"]
    await listing.wait_for_function(
        f"document.querySelector('[data-live-count=\"tiers.HOT\"]').textContent == '({hot_before})'"
    )

    # A second browser, the operator's, edits through the admin.
    operator = await signed_in_page(browser, server, "/admin/")
    await admin_form_save(
        operator,
        server,
        "/admin/graphapp/node/add/",
        content="Seen live in the browser",
        node_type="DREAM",
        momentum="0.95",
    )
    created = live.locator('[data-feed] li[data-kind="created"]').first
    await created.wait_for()
    node_id = await created.get_attribute("data-node")
    assert node_id is not None
    assert "created in" in (await created.text_content() or "")
    assert "DREAM" in (await created.text_content() or "")
    link = created.locator("a")
    assert await link.get_attribute("href") == f"/admin/graphapp/node/{node_id}/change/"
    await live.wait_for_function(shows_nodes(121))
    assert await live.text_content('[data-delta="nodes"]') == "+1"
    await listing.wait_for_function(shows_nodes(121))
    await listing.wait_for_function(
        "document.querySelector('[data-live-count=\"tiers.HOT\"]').textContent"
        f" == '({hot_before + 1})'"
    )

    await admin_form_save(
        operator, server, f"/admin/graphapp/node/{node_id}/change/", momentum="0.1"
    )
    moved = live.locator(feed_entry("tier", node_id))
    await moved.wait_for()
    assert "moved from HOT to COLD" in " ".join((await moved.text_content() or "").split())
    await listing.wait_for_function(
        f"document.querySelector('[data-live-count=\"tiers.HOT\"]').textContent == '({hot_before})'"
    )

    # Edges in both directions on the node's change page.
    await admin_form_save(
        operator,
        server,
        "/admin/graphapp/edge/add/",
        source=node_id,
        target="1",
        relation="improves",
        weight="0.5",
    )
    await admin_form_save(
        operator, server, "/admin/graphapp/edge/add/", source="2", target=node_id, weight="0.7"
    )
    await operator.goto(f"{server.url}/admin/graphapp/node/{node_id}/change/")
    outgoing = operator.locator("#outgoing-group")
    incoming = operator.locator("#incoming-group")
    assert await outgoing.locator("tr.form-row.has_original").count() == 1
    assert await incoming.locator("tr.form-row.has_original").count() == 1
    assert await outgoing.locator('input[name$="-target"]').first.input_value() == "1"
    assert await incoming.locator('input[name$="-source"]').first.input_value() == "2"

    await operator.goto(f"{server.url}/admin/graphapp/node/{node_id}/delete/")
    await operator.click("input[type=submit]")
    await operator.wait_for_selector(".messagelist .success")
    deleted = live.locator(feed_entry("deleted", node_id))
    await deleted.wait_for()
    assert await deleted.locator("a").count() == 0  # nothing left to link to
    await live.wait_for_function(shows_nodes(120))
    assert await live.text_content('[data-delta="nodes"]') == "\u00b10"
    keys = await feed_keys(live)
    assert len(keys) == len(set(keys))

    # A burst of more than a screenful is one line, not forty.
    async with logged_in(server, "editor") as editor:
        burst = [{"content": f"burst {i}", "node_type": "CODE", "momentum": 0.5} for i in range(40)]
        answer = await post_json(editor, server, "/graph/api/nodes/", burst)
        assert answer.status_code == 201
    summary = live.locator('[data-feed] li[data-kind="summary"]').first
    await summary.wait_for()
    assert "+40 nodes created" in (await summary.text_content() or "")
    await live.wait_for_function(shows_nodes(160))
    assert await live.text_content('[data-delta="nodes"]') == "+40"

    await live.wait_for_selector("[data-chart-line][points*=' ']")
    for dark in (False, True):
        await screenshot(live, "live-page", dark=dark)
        await screenshot(listing, "admin-node-list", dark=dark)
    index = await open_live(context, server, "/admin/")
    for dark in (False, True):
        await screenshot(index, "admin-index", dark=dark)
    await operator.context.close()


async def test_nodes_with_many_edges_save_through_the_admin(
    browser: Browser, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    seeded = server.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from tests.factories import hub; "
        "print(hub(20_000, direction='incoming').pk, hub(200, direction='outgoing').pk)",
    )
    assert seeded.returncode == 0, seeded.stderr
    hubs = zip(seeded.stdout.split()[-2:], ("incoming", "outgoing"), (20_000, 200), strict=True)
    page = await sign_in(await browser.new_page(), server, "/admin/")
    for node_id, direction, edges in hubs:
        path = f"/admin/graphapp/node/{node_id}/change/"
        await admin_form_save(page, server, path, content=f"saved beside {edges} edges")
        await page.goto(f"{server.url}{path}")
        assert await page.input_value("#id_content") == f"saved beside {edges} edges"
        summary = page.locator(f"#{direction}-summary")
        assert f"{edges:,} edges, too many" in (await summary.text_content() or "")
        if direction == "incoming":
            await summary.scroll_into_view_if_needed()
            for dark in (False, True):
                await screenshot(page, "admin-node-edges", dark=dark)
        await summary.locator(".graphapp-edge-summary__all").click()
        await page.wait_for_selector("#result_list")
        assert f"{edges} edges" in (await page.text_content(".paginator") or "")
        assert await page.locator("#result_list tbody tr").count() == 100


async def test_badge_goes_to_reconnecting_and_back_after_a_server_restart(
    context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    page = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    port = server.port
    server.stop()
    await page.wait_for_selector('.graphapp-state[data-state="reconnecting"]')
    # Meanwhile another process changes the graph: the page must show it
    # afterwards, in the numbers and (replayed) in the feed.
    shell = server.manage(
        "shell",
        "-c",
        "from graphapp.models import Node; "
        "print(Node.objects.create(content='while the server was down', node_type='FACT').pk)",
    )
    assert shell.returncode == 0, shell.stderr
    while_down = int(shell.stdout.split()[-1])
    server.start(setup=False, port=port)
    await page.wait_for_selector('.graphapp-state[data-state="live"]')
    truth = await api_stats(server)
    await page.wait_for_function(shows_nodes(truth["nodes"]))
    assert truth["nodes"] == 1
    await page.locator(feed_entry("created", while_down)).wait_for()
    async with logged_in(server, "editor") as editor:
        created = await create_node(editor, server, node_type="CODE")
    await page.locator(feed_entry("created", created["id"])).wait_for()
    await page.wait_for_function(shows_nodes(2))
    keys = await feed_keys(page)
    assert len(keys) == len(set(keys))
    assert await page.locator('[data-feed] li[data-kind="created"]').count() == 2
    assert await page.locator('[data-feed] li[data-kind="note"]').count() == 0
    assert await page.text_content(".graphapp-state") == "live"


async def test_badge_says_denied_and_stops_when_the_session_ends(
    context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(graphapp={"REVALIDATE_INTERVAL": 0.3, "HEARTBEAT": 0.2})
    page = await until_live(
        await sign_in(await context.new_page(), server, "/graph/live/", username="viewer")
    )
    ended = server.manage(
        "shell",
        "-c",
        "from django.contrib.sessions.models import Session; Session.objects.all().delete()",
    )
    assert ended.returncode == 0, ended.stderr
    # The stream ends at its next check; the page learns why (403) and stops
    # instead of retrying for ever.
    await page.wait_for_selector('.graphapp-state[data-state="denied"]')
    requests_then = server.log().count("GET /graph/events/")
    await page.wait_for_timeout(2000)
    assert await page.text_content(".graphapp-state") == "denied"
    assert server.log().count("GET /graph/events/") == requests_then
    title = await page.get_attribute(".graphapp-state", "title")
    assert title is not None
    assert "reload the page to sign in" in title


async def test_eight_tabs_share_one_stream(
    context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    first = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    tabs = [first] + [await open_live(context, server, "/graph/live/") for _ in range(7)]
    for tab in tabs:
        assert await tab.get_attribute("[data-graphapp-panel]", "data-transport") == (
            "shared-worker"
        )
    assert 1 <= await open_streams(server) <= 2
    async with logged_in(server, "editor") as editor:
        created = await create_node(editor, server, node_type="ENTITY")
    for tab in tabs:
        await tab.locator(feed_entry("created", created["id"])).wait_for()
        await tab.wait_for_function(shows_nodes(1))
        assert await tab.text_content(".graphapp-state") == "live"
    for tab in tabs[1:]:
        await tab.close()
    # The remaining tab still streams, through the same worker.
    async with logged_in(server, "editor") as editor:
        await create_node(editor, server)
    await first.wait_for_function(shows_nodes(2))


async def test_without_shared_worker_each_tab_streams_on_its_own(
    context: BrowserContext, live_server_default: LiveServer
) -> None:
    await context.add_init_script("delete window.SharedWorker")
    page = await until_live(
        await sign_in(await context.new_page(), live_server_default, "/graph/live/")
    )
    assert await page.get_attribute("[data-graphapp-panel]", "data-transport") == "page"
    current = (await api_stats(live_server_default))["nodes"]
    async with logged_in(live_server_default, "editor") as editor:
        await create_node(editor, live_server_default)
    await page.wait_for_function(shows_nodes(current + 1))


async def test_live_page_fits_a_phone_and_labels_what_it_shows(
    browser: Browser, live_server_default: LiveServer
) -> None:
    phone = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        page = await until_live(
            await sign_in(await phone.new_page(), live_server_default, "/graph/live/")
        )
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert await page.get_attribute(".graphapp-state", "role") == "status"
        assert await page.get_attribute(".graphapp-chart svg", "role") == "img"
        # Every bar names its tier or type in text, not only in colour.
        labels = await page.locator('[data-bars="types"] .graphapp-bar__label').all_text_contents()
        assert labels == ["FACT", "CONCEPT", "CODE", "DREAM", "ENTITY"]
    finally:
        await phone.close()


def test_screenshots_are_shown_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in (
        "live-page-light",
        "live-page-dark",
        "admin-node-list-light",
        "admin-index-dark",
        "admin-node-edges-light",
    ):
        assert f"docs/screenshots/{name}.png" in readme, name


# -- stale: the server is up but cannot confirm the numbers ---------------------------

STALE = '.graphapp-state[data-state="stale"]'
LIVE = '.graphapp-state[data-state="live"]'
# Well within the guarantee's seconds, well short of Playwright's 30 s.
STATE_TIMEOUT_MS = 15_000

# The fault the server cannot read past, and its repair (a table's name, nothing lost).
BREAK_VERSION = "ALTER TABLE graphapp_version RENAME TO graphapp_version_away"
REPAIR_VERSION = "ALTER TABLE graphapp_version_away RENAME TO graphapp_version"


def alter_database(server: LiveServer, statement: LiteralString) -> None:
    """Run ``statement`` on the server's database, as another program would."""
    if server.database_url.startswith("postgres"):
        with psycopg.connect(server.database_url, autocommit=True) as postgres:
            postgres.execute(statement)
        return
    assert not server.database_url, "a server on another server's SQLite file"
    with contextlib.closing(sqlite3.connect(server.workdir / "db.sqlite3", timeout=10)) as db:
        db.execute(statement)
        db.commit()


async def stale_since(page: Page) -> str:
    """The badge says stale with a time; returns that time (ISO 8601) as the server sent it."""
    await page.wait_for_selector(STALE, timeout=STATE_TIMEOUT_MS)
    text = " ".join((await page.text_content(".graphapp-state") or "").split())
    assert re.fullmatch(r"stale \u00b7 last confirmed \d{1,2}:\d{2}:\d{2}(\W*[AP]M)?", text), text
    confirmed = await page.get_attribute(".graphapp-state__confirmed", "data-confirmed")
    assert confirmed is not None
    assert await page.get_attribute(".graphapp-state__confirmed time", "datetime") == (
        datetime.fromisoformat(confirmed)
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    return confirmed


async def test_badge_says_stale_while_the_database_cannot_be_read_and_live_after(
    browser: Browser, context: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    started = datetime.now(UTC)
    server = make_server()
    live = await until_live(await sign_in(await context.new_page(), server, "/graph/live/"))
    shown = await nodes_shown(live)

    alter_database(server, BREAK_VERSION)
    broken = datetime.now(UTC)
    confirmed = await stale_since(live)
    # The last confirmed moment is one before the table went, not the page's clock.
    assert started - timedelta(seconds=1) <= datetime.fromisoformat(confirmed)
    assert datetime.fromisoformat(confirmed) <= broken + timedelta(seconds=1)
    assert await nodes_shown(live) == shown  # the numbers stay, under a badge that says so
    title = await live.get_attribute(".graphapp-state", "title") or ""
    assert "cannot confirm" in title

    # A tab opened while stale is handed the state by the shared worker: the admin's list.
    listing = await context.new_page()
    await listing.goto(f"{server.url}/admin/graphapp/node/")
    assert await stale_since(listing) == confirmed
    assert await listing.get_attribute("[data-graphapp-panel]", "data-transport") == (
        "shared-worker"
    )
    # Another browser opens a stream of its own while stale: stats first, then the status.
    other = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        elsewhere = await sign_in(await other.new_page(), server, "/admin/graphapp/node/")
        assert await stale_since(elsewhere) == confirmed
        await elsewhere.wait_for_function(shows_nodes(shown))

        for dark in (False, True):
            await screenshot(live, "live-page-stale", dark=dark)
            await screenshot(listing, "admin-node-list-stale", dark=dark)

        alter_database(server, REPAIR_VERSION)
        for page in (live, listing, elsewhere):
            await page.wait_for_selector(LIVE, timeout=STATE_TIMEOUT_MS)
            assert await page.text_content(".graphapp-state") == "live"
        note = live.locator('[data-feed] li[data-kind="note"]').first
        assert "Confirmed again" in (await note.text_content() or "")

        # And it streams again: a change made now shows everywhere.
        async with logged_in(server, "editor") as editor:
            created = await create_node(editor, server, node_type="CONCEPT")
        for page in (live, listing, elsewhere):
            await page.wait_for_function(shows_nodes(shown + 1))
        await live.locator(feed_entry("created", created["id"])).wait_for()
        assert await live.text_content(".graphapp-state") == "live"
    finally:
        await other.close()


# -- the client's states against a stand-in server ------------------------------------
#
# The real live page (template, stream.js, panel.js, panel.css) served by a few lines of
# asyncio, with an event stream the test writes: each state of the client on its own,
# whatever the server's core does.

STATIC = ROOT / "graphapp" / "static" / "graphapp"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def sse_event(event: str, data: Any, id: int | None = None) -> bytes:
    lines = ([f"id: {id}"] if id is not None else []) + [f"event: {event}"]
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def stats_event(version: int, nodes: int) -> bytes:
    snapshot = {
        "type": "update",
        "nodes": nodes,
        "edges": 2 * nodes,
        "avg_entanglement": 0.25,
        "tiers": {"HOT": nodes, "WARM": 0, "COLD": 0},
        "types": {"FACT": nodes, "CONCEPT": 0, "CODE": 0, "DREAM": 0, "ENTITY": 0},
        "version": version,
        "at": datetime.now(UTC).isoformat(),
    }
    return sse_event("stats", snapshot, id=version)


def status_event(state: str, confirmed_at: str | None = None, version: int | None = None) -> bytes:
    return sse_event("status", {"state": state, "confirmed_at": confirmed_at, "version": version})


def created_event(version: int, *node_ids: int) -> bytes:
    """A change event as the core sends it now: no id line."""
    changes = [
        {"kind": "created", "id": node_id, "node_type": "FACT", "tier": "HOT"}
        for node_id in node_ids
    ]
    return sse_event("change", {"version": version, "changes": changes, "summary": {}})


class StandIn:
    """graphapp's pages as a browser sees them, and an event stream the test writes.

    ``greeting`` is what every new stream gets first; ``send`` writes to the open
    streams; ``drop`` ends them (the browser then reconnects).
    """

    def __init__(self) -> None:
        self.page = render_to_string("graphapp/live.html", {"show_admin_link": False}).encode()
        catalog = JavaScriptCatalog.as_view(packages=["graphapp"])
        self.catalog = catalog(RequestFactory().get("/graph/jsi18n/")).content
        self.greeting: list[bytes] = []
        self.streams: set[asyncio.Queue[bytes | None]] = set()
        self.connects = 0
        self.server: asyncio.Server | None = None
        self.connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        # Streams end, and so do the idle connections a browser opens ahead of need
        # (not cancelled: Python 3.11's asyncio logs a cancelled connection handler).
        self.drop()
        for writer in self.connections.values():
            writer.close()
        await asyncio.gather(*self.connections)
        await self.server.wait_closed()

    def send(self, *frames: bytes) -> None:
        for queue in self.streams:
            queue.put_nowait(b"".join(frames))

    def drop(self) -> None:
        for queue in self.streams:
            queue.put_nowait(None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = writer
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode().split("?")[0]
            if path == "/graph/events/":
                await self._stream(writer)
            else:
                writer.write(self._answer(path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the browser went
        finally:
            del self.connections[task]
            writer.close()

    def _answer(self, path: str) -> bytes:
        if path == "/graph/live/":
            return self._response(self.page, "text/html; charset=utf-8")
        if path == "/graph/jsi18n/":  # the panel's strings (panel.js needs its gettext)
            return self._response(self.catalog, "text/javascript")
        if path == "/graph/api/stats/":  # the access check after a stream ends: allowed
            return self._response(b"{}", "application/json")
        if path.startswith("/static/graphapp/") and (STATIC / Path(path).name).is_file():
            content = (STATIC / Path(path).name).read_bytes()
            return self._response(content, CONTENT_TYPES[Path(path).suffix])
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    @staticmethod
    def _response(body: bytes, content_type: str) -> bytes:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.streams.add(queue)
        self.connects += 1
        try:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n" + b"".join(self.greeting)
            )
            await writer.drain()
            while (frames := await queue.get()) is not None:
                writer.write(frames)
                await writer.drain()
        finally:
            self.streams.discard(queue)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def clocked(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser profile whose times read the same on every machine."""
    made = await browser.new_context(
        viewport={"width": 1100, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    yield made
    await made.close()


# Every state the badge took, in order: its state when the page's scripts have run (no
# event has come by then), then every change.
RECORD_STATES = """
window.graphappStates = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector(".graphapp-state");
  window.graphappStates.push(badge.dataset.state);
  new MutationObserver(() => window.graphappStates.push(badge.dataset.state))
    .observe(badge, {attributes: true, attributeFilter: ["data-state"]});
});
"""


async def states_taken(page: Page) -> list[str]:
    states: list[str] = await page.evaluate("window.graphappStates")
    return [state for index, state in enumerate(states) if not index or states[index - 1] != state]


async def test_stand_in_badge_says_stale_with_its_time_in_every_tab_and_live_again(
    clocked: BrowserContext, stand_in: StandIn
) -> None:
    stand_in.greeting = [stats_event(1, nodes=5)]
    first = await clocked.new_page()
    await first.goto(f"{stand_in.url}/graph/live/")
    await until_live(first)

    stand_in.send(status_event("stale", "2025-03-04T10:42:05.250+00:00", version=1))
    await first.wait_for_selector(STALE)
    assert await first.text_content(".graphapp-state") == (
        "stale \u00b7 last confirmed 04/03/2025, 10:42:05"  # not today: with its date
    )
    assert await first.get_attribute(".graphapp-state time", "datetime") == (
        "2025-03-04T10:42:05.250Z"
    )
    assert await nodes_shown(first) == 5
    # Numbers that come while stale are shown, still under the stale badge.
    stand_in.send(stats_event(2, nodes=6))
    await first.wait_for_function(shows_nodes(6))
    assert await first.get_attribute(".graphapp-state", "data-state") == "stale"

    # A tab opened now learns it from the shared worker, time included.
    second = await clocked.new_page()
    await second.goto(f"{stand_in.url}/graph/live/")
    await second.wait_for_selector(STALE)
    assert await second.get_attribute("[data-graphapp-panel]", "data-transport") == (
        "shared-worker"
    )
    assert await second.text_content(".graphapp-state") == await first.text_content(
        ".graphapp-state"
    )
    await second.wait_for_function(shows_nodes(6))
    assert stand_in.connects == 1
    for dark in (False, True):
        await screenshot(second, "stale-badge", dark=dark)

    stand_in.send(status_event("live", "2025-03-04T10:50:00+00:00", version=2))
    for page in (first, second):
        await page.wait_for_selector(LIVE)
        assert await page.text_content(".graphapp-state") == "live"
        assert await page.locator(".graphapp-state__confirmed").count() == 0
    note = first.locator('[data-feed] li[data-kind="note"]')
    assert "Confirmed again" in (await note.text_content() or "")


@pytest.mark.parametrize("transport", ["shared-worker", "page"])
async def test_stand_in_stream_opened_while_stale_never_says_live(
    clocked: BrowserContext, stand_in: StandIn, transport: str
) -> None:
    if transport == "page":
        await clocked.add_init_script("delete window.SharedWorker")
    await clocked.add_init_script(RECORD_STATES)
    # What a server that cannot confirm sends a new stream: its latest stats, then why.
    stand_in.greeting = [stats_event(3, nodes=4) + status_event("stale", None)]
    page = await clocked.new_page()
    await page.goto(f"{stand_in.url}/graph/live/")
    await page.wait_for_selector(STALE)
    assert await page.get_attribute("[data-graphapp-panel]", "data-transport") == transport
    assert await page.text_content(".graphapp-state") == "stale \u00b7 never confirmed"
    await page.wait_for_function(shows_nodes(4))
    await page.wait_for_timeout(600)  # past the moment a first stats waits for its status
    assert await states_taken(page) == ["connecting", "stale"]

    # The stream ends; the next one says nothing of its status: it is live.
    stand_in.greeting = [stats_event(4, nodes=7)]
    stand_in.drop()
    await page.wait_for_selector(LIVE)
    await page.wait_for_function(shows_nodes(7))
    assert await states_taken(page) == ["connecting", "stale", "reconnecting", "live"]


async def test_stand_in_change_events_without_ids_each_show_once(
    clocked: BrowserContext, stand_in: StandIn
) -> None:
    stand_in.greeting = [stats_event(1, nodes=1)]
    page = await clocked.new_page()
    await page.goto(f"{stand_in.url}/graph/live/")
    await until_live(page)
    # Two change events after one stats share its lastEventId: both are shown all the same.
    stand_in.send(stats_event(2, nodes=2), created_event(2, 11))
    stand_in.send(created_event(2, 12), stats_event(3, nodes=3), created_event(3, 13))
    for node_id in (11, 12, 13):
        await page.locator(feed_entry("created", node_id)).wait_for()
    # The very same event again (a replay) adds nothing.
    stand_in.send(created_event(3, 13), stats_event(4, nodes=4), created_event(4, 14))
    await page.locator(feed_entry("created", 14)).wait_for()
    assert await page.locator('[data-feed] li[data-kind="created"]').count() == 4
    keys = await feed_keys(page)
    assert len(keys) == len(set(keys))
    await page.wait_for_function(shows_nodes(4))
