"""The stream as every standard SSE client reads it, against daphne.

httpx-sse, sseclient-py and requests-sse (tests/sse_reader.py), Node's
``eventsource`` (tests/js, installed by ``make node-clients``) and Chromium's own
EventSource: each must see the current snapshot as its first event (a ``retry:``
in a block of its own was an empty ``message`` first in httpx-sse, and lost in
sseclient-py), then each update; the libraries that reconnect by themselves come
back after a restart on the drain's ``retry:``, the others end on the
``reconnect`` event that carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import BrowserContext, async_playwright

from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS
from tests.live import EVENT_TIMEOUT, ROOT, STATS_FIELDS, LiveServer, create_node, logged_in

CHROMIUM = "/usr/bin/chromium"
NODE_READER = ROOT / "tests" / "js" / "read_stream.mjs"
NODE_PACKAGE = ROOT / "tests" / "js" / "node_modules" / "eventsource" / "package.json"
# Longer than any test's wait: a client that came back sooner took the drain's
# retry (a second or two), not this one.
RETRY = 600_000
# The libraries that show the retry field of an event.
SHOW_RETRY = {"httpx-sse", "sseclient-py"}

pytestmark = pytest.mark.e2e

Record = dict[str, Any]


class Reader:
    """What one client library reported, in order: events, connections, ends."""

    def __init__(self) -> None:
        self.records: asyncio.Queue[Record] = asyncio.Queue()
        self.seen: list[Record] = []

    def report(self, record: Record) -> None:
        self.seen.append(record)
        self.records.put_nowait(record)

    async def next(self, within: float = EVENT_TIMEOUT) -> Record:
        try:
            return await asyncio.wait_for(self.records.get(), within)
        except TimeoutError:
            raise AssertionError(f"nothing within {within} s after {self.seen}") from None

    async def next_event(self) -> Record:
        """The next event but ``change`` and ``history`` (each follows its
        snapshot), past connections opened and lost."""
        while "event" not in (record := await self.next()) or record["event"] in FOLLOWERS:
            assert "end" not in record, self.seen
        return record

    def events(self) -> list[Record]:
        return [record for record in self.seen if "event" in record]


@contextlib.asynccontextmanager
async def process_reader(command: list[str]) -> AsyncIterator[Reader]:
    """A client library in a process of its own, printing one JSON line per record."""
    reader = Reader()
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            reader.report(json.loads(line))
        assert process.stderr is not None
        reader.report({"exit": await process.wait(), "stderr": (await process.stderr.read())})

    reading = asyncio.create_task(read())
    try:
        yield reader
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reading


def python_reader(
    library: str,
) -> Callable[[LiveServer, str], contextlib.AbstractAsyncContextManager[Reader]]:
    def start(
        server: LiveServer, session_id: str
    ) -> contextlib.AbstractAsyncContextManager[Reader]:
        url = f"{server.url}/graph/events/"
        return process_reader([sys.executable, "-m", "tests.sse_reader", library, url, session_id])

    return start


def node_reader(
    server: LiveServer, session_id: str
) -> contextlib.AbstractAsyncContextManager[Reader]:
    assert NODE_PACKAGE.exists(), "Node's eventsource is not installed: run `make node-clients`"
    return process_reader(["node", str(NODE_READER), f"{server.url}/graph/events/", session_id])


# Chromium's own EventSource on a page of the server's origin, with no script of graphapp's.
BROWSER_READER = """() => {
  const source = new EventSource("/graph/events/");
  source.onopen = () => graphappRecord({ open: true });
  source.onerror = () => graphappRecord(
    source.readyState === EventSource.CLOSED ? { end: true } : { error: "connection lost" });
  for (const name of ["stats", "history", "change", "status", "reconnect", "message"]) {
    source.addEventListener(name, (event) =>
      graphappRecord({ event: name, data: event.data, retry: null }));
  }
}"""


@contextlib.asynccontextmanager
async def chromium_with_session(
    server: LiveServer, session_id: str
) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium, headless, holding the session ``session_id`` of ``server``."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context()
            await context.add_cookies(
                [{"name": "sessionid", "value": session_id, "url": server.url}]
            )
            yield context
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def chromium_reader(server: LiveServer, session_id: str) -> AsyncIterator[Reader]:
    reader = Reader()
    async with chromium_with_session(server, session_id) as context:
        page = await context.new_page()
        await page.expose_function("graphappRecord", reader.report)
        await page.goto(f"{server.url}/graph/api/stats/")
        await page.evaluate(BROWSER_READER)
        yield reader


Start = Callable[[LiveServer, str], contextlib.AbstractAsyncContextManager[Reader]]
READERS: dict[str, Start] = {
    "httpx-sse": python_reader("httpx-sse"),
    "sseclient-py": python_reader("sseclient-py"),
    "requests-sse": python_reader("requests-sse"),
    "eventsource": node_reader,
    "chromium": chromium_reader,
}


FOLLOWERS = ("change", "history")


def stats_of(event: Record) -> dict[str, Any]:
    assert event["event"] == "stats", event
    stats: dict[str, Any] = json.loads(event["data"])
    assert stats["type"] == "update"
    for key in (*STATS_FIELDS, "version", "at"):
        assert key in stats, key
    return stats


async def snapshot_first_then_update(
    library: str, reader: Reader, server: LiveServer, editor: Any
) -> dict[str, Any]:
    """The first event is the current snapshot, and a write brings the next."""
    first = await reader.next_event()
    stats = stats_of(first)
    # Every client sees the history right after it, ending with that snapshot.
    while len(reader.events()) < 2:
        await reader.next()
    history = reader.events()[1]
    assert history["event"] == "history", reader.seen
    assert json.loads(history["data"])["points"][-1]["version"] == stats["version"]
    assert reader.events()[:2] == [first, history]
    assert first["retry"] == (RETRY if library in SHOW_RETRY else None)
    now = (await editor.get("/graph/api/stats/")).json()
    assert [stats[key] for key in STATS_FIELDS] == [now[key] for key in STATS_FIELDS]
    await create_node(editor, server, node_type="DREAM")
    after = stats_of(await reader.next_event())
    assert after["nodes"] == stats["nodes"] + 1
    assert after["version"] > stats["version"]
    return after


def assert_no_empty_event(reader: Reader) -> None:
    for event in reader.events():
        assert event["event"] != "message", reader.seen
        assert event["data"], reader.seen


CHROMIUM_PARAM = pytest.param(
    "chromium",
    marks=pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("GRAPHAPP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed (make chromium installs it)",
    ),
)


# uvicorn still answers for a tenth of a second after the drain has ended its
# streams: what their clients find there must not stop them.
@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
@pytest.mark.parametrize("library", ["requests-sse", "eventsource", CHROMIUM_PARAM])
async def test_a_reconnecting_client_reads_the_snapshot_first_and_comes_back_after_a_restart(
    make_server: Callable[..., LiveServer], library: str, server_kind: str
) -> None:
    server = make_server(graphapp={"RETRY": RETRY}, server=server_kind)
    async with logged_in(server, "editor") as editor:
        session_id = editor.cookies["sessionid"]
        async with READERS[library](server, session_id) as reader:
            before = await snapshot_first_then_update(library, reader, server, editor)
            await asyncio.to_thread(server.restart)
            # The drain's word, then the stream ends and the client comes back
            # (bounced meanwhile by the old process, if it reached it, with the
            # same word alone).
            reconnect = await reader.next_event()
            assert reconnect["event"] == "reconnect", reader.seen
            assert json.loads(reconnect["data"])["retry"] <= RECONNECT_AFTER_MS + MIN_SPREAD_MS
            while (fresh := await reader.next_event())["event"] == "reconnect":
                pass
            fresh = stats_of(fresh)
            assert fresh["nodes"] == before["nodes"]
            await create_node(editor, server, node_type="CODE")
            after = stats_of(await reader.next_event())
            assert after["nodes"] == before["nodes"] + 1
    assert_no_empty_event(reader)


@pytest.mark.parametrize("library", ["httpx-sse", "sseclient-py"])
async def test_a_client_that_does_not_reconnect_ends_on_the_reconnect_event(
    make_server: Callable[..., LiveServer], library: str
) -> None:
    server = make_server(graphapp={"RETRY": RETRY})
    async with (
        logged_in(server, "editor") as editor,
        READERS[library](server, editor.cookies["sessionid"]) as reader,
    ):
        await snapshot_first_then_update(library, reader, server, editor)
        await asyncio.to_thread(server.stop)
        last = await reader.next_event()
        assert (await reader.next()) == {"end": True}
    # The hint survives as an event of its own: the retry (a second and a share of the
    # spread) to wait before connecting again, in the field and in the data.
    assert last["event"] == "reconnect", reader.seen
    hint = json.loads(last["data"])
    assert hint == {"reason": "shutdown", "retry": last["retry"]}
    assert RECONNECT_AFTER_MS <= hint["retry"] <= RECONNECT_AFTER_MS + MIN_SPREAD_MS
    assert_no_empty_event(reader)
