"""The live page and the admin's panel in German, in headless Chromium (Debian's) whose
language is German: what the templates say and what panel.js writes, while it streams."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import polib
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.live import LiveServer, create_node, logged_in, post_json
from tests.test_browser import (
    BREAK_VERSION,
    LIVE,
    REPAIR_VERSION,
    STALE,
    STATE_TIMEOUT_MS,
    admin_form_save,
    alter_database,
    feed_entry,
    nodes_shown,
    shows_nodes,
    sign_in,
    until_live,
)
from tests.test_browser import browser as browser  # the fixture: Chromium, closed network
from tests.test_browser import pytestmark as browser_marks
from tests.test_i18n import MESSAGES

pytestmark = browser_marks


@pytest.fixture
async def german(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser profile set to German: its Accept-Language, and the JS locale."""
    async with await browser.new_context(locale="de-DE", timezone_id="UTC") as made:
        yield made


def english_phrases() -> list[str]:
    """The English source phrases of the panel (panel.js, _panel.html) that German
    changes: the words between placeholders and tags, as a page would show them."""
    script = polib.pofile(str(MESSAGES / "djangojs.po"))
    template = polib.pofile(str(MESSAGES / "django.po"))
    entries = list(script) + [
        entry
        for entry in template
        if any(path.endswith("_panel.html") for path, _ in entry.occurrences)
    ]
    phrases: set[str] = set()
    for entry in entries:
        if entry.msgid == entry.msgstr:
            continue
        for piece in re.split(r"%\(\w+\)s|%s|<[^>]+>", entry.msgid):
            words = piece.strip(" .,:;()")
            if len(words) >= 4:
                phrases.add(words)
    assert {"created in", "Latest changes"} <= phrases
    return sorted(phrases)


async def panel_text(page: Page) -> str:
    text: str = await page.inner_text("[data-graphapp-panel]")
    return " ".join(text.split())


async def assert_no_english(page: Page) -> None:
    shown = await panel_text(page)
    left = [phrase for phrase in english_phrases() if phrase in shown]
    assert left == [], f"English in the German panel: {left}\n{shown}"


async def test_live_page_and_admin_panel_speak_german_and_stream(
    german: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    live = await until_live(await sign_in(await german.new_page(), server, "/graph/live/"))
    assert await live.get_attribute("html", "lang") == "de"
    assert await live.title() == "Graph in Echtzeit"
    assert await live.text_content(".graphapp-state") == "aktuell"
    assert "Verbunden" in (await live.get_attribute(".graphapp-state", "title") or "")
    assert await live.locator("#graphapp-feed-title").text_content() == "Letzte Änderungen"
    tiers = await live.locator('[data-bars="tiers"] .graphapp-bar__label').all_text_contents()
    assert tiers == ["HEISS", "WARM", "KALT"]
    types = await live.locator('[data-bars="types"] .graphapp-bar__label').all_text_contents()
    assert types == ["FAKT", "KONZEPT", "CODE", "TRAUM", "ENTITÄT"]

    listing = await german.new_page()  # the same browser: the shared stream
    await listing.goto(f"{server.url}/admin/graphapp/node/")
    await until_live(listing)
    assert await listing.text_content(".graphapp-state") == "aktuell"
    assert "Nach Stufe" in await listing.inner_text("#changelist-filter")
    assert await listing.locator("#changelist-filter").get_by_text("Heiß").count() == 1

    # A write moves the numbers, and panel.js tells of it in German.
    async with logged_in(server, "editor") as editor:
        created = await create_node(editor, server, node_type="DREAM", momentum=0.95)
    for page in (live, listing):
        await page.wait_for_function(shows_nodes(1))
    entry = live.locator(feed_entry("created", created["id"]))
    await entry.wait_for()
    said = " ".join((await entry.text_content() or "").split())
    assert said.endswith(f"Knoten #{created['id']} TRAUM angelegt in HEISS"), said
    assert await live.text_content('[data-delta="nodes"]') == "+1"
    assert await live.get_attribute('[data-delta="nodes"]', "title") == (
        "Änderung seit dem Öffnen dieser Seite"
    )
    await listing.wait_for_function(
        "document.querySelector('[data-live-count=\"tiers.HOT\"]').textContent == '(1)'"
    )

    # A change of tier through the German admin: the words around the tiers reordered.
    operator = await german.new_page()
    await admin_form_save(
        operator, server, f"/admin/graphapp/node/{created['id']}/change/", momentum="0.1"
    )
    assert "erfolgreich" in (await operator.inner_text(".messagelist .success"))
    moved = live.locator(feed_entry("tier", created["id"]))
    await moved.wait_for()
    said = " ".join((await moved.text_content() or "").split())
    assert said.endswith(f"Knoten #{created['id']} TRAUM von HEISS nach KALT gewechselt"), said

    # More than a screenful in one write: one summary line, in German plurals.
    async with logged_in(server, "editor") as editor:
        burst = [{"content": f"burst {i}", "node_type": "CODE", "momentum": 0.5} for i in range(21)]
        assert (await post_json(editor, server, "/graph/api/nodes/", burst)).status_code == 201
    summary = live.locator('[data-feed] li[data-kind="summary"]').first
    await summary.wait_for()
    assert "+21 Knoten angelegt" in (await summary.text_content() or "")
    await live.wait_for_function(shows_nodes(22))
    await live.wait_for_function(
        "document.querySelector('[data-chart-summary]').textContent"
        " == 'Von 0 auf 22 Knoten (niedrigster Stand 0, höchster 22).'"
    )
    for page in (live, listing):
        await assert_no_english(page)


async def test_stale_badge_and_its_note_in_german(
    german: BrowserContext, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server()
    live = await until_live(await sign_in(await german.new_page(), server, "/graph/live/"))
    shown = await nodes_shown(live)
    alter_database(server, BREAK_VERSION)
    await live.wait_for_selector(STALE, timeout=STATE_TIMEOUT_MS)
    badge = " ".join((await live.text_content(".graphapp-state") or "").split())
    assert re.fullmatch(r"veraltet \u00b7 zuletzt bestätigt \d{2}:\d{2}:\d{2}", badge), badge
    title = await live.get_attribute(".graphapp-state", "title") or ""
    assert title.startswith("Veraltet: der Server kann diese Zahlen nicht"), title
    assert "Zuletzt bestätigt: " in title
    assert await nodes_shown(live) == shown

    alter_database(server, REPAIR_VERSION)
    await live.wait_for_selector(LIVE, timeout=STATE_TIMEOUT_MS)
    assert await live.text_content(".graphapp-state") == "aktuell"
    note = live.locator('[data-feed] li[data-kind="note"]').first
    assert "Wieder bestätigt." in (await note.text_content() or "")
    async with logged_in(server, "editor") as editor:
        await create_node(editor, server)
    await live.wait_for_function(shows_nodes(shown + 1))
    await assert_no_english(live)
