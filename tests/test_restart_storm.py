"""A restart that does not storm: while no process listens, each client of a
drained stream tries about once a second, and all come back soon after.

Standard EventSources (Node's ``eventsource``, Chromium's own) keep to the
drain's ``retry:``; graphapp's live page (stream.js) keeps to the ``reconnect``
event's word. While the server is down a doorman stands at its port: it reads
each connection's request line (which client, which path) and closes it, so
every attempt is counted, per client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page

from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS
from tests.live import ROOT, LiveServer, logged_in
from tests.test_clients import CHROMIUM, chromium_with_session

pytestmark = pytest.mark.e2e

STORM = ROOT / "tests" / "js" / "storm.mjs"
NODE_CLIENTS = 10
BROWSER_SOURCES = 3
OUTAGE = 6.0
# Each client waits at least RECONNECT_AFTER_MS before each attempt: one at the
# start of the outage, then one per second at most (and one more that may meet
# the doorman as it leaves).
MOST_ATTEMPTS = int(OUTAGE * 1000 / RECONNECT_AFTER_MS) + 1
# Back within the longest wait the drain gave, and a margin for the start.
BACK_WITHIN = (RECONNECT_AFTER_MS + MIN_SPREAD_MS) / 1000 + 5.0

PLAIN_SOURCES = """(count) => {
  for (let index = 0; index < count; index++) {
    const client = "c" + index;
    const source = new EventSource("/graph/events/?client=" + client);
    source.addEventListener("stats", (event) =>
      graphappRecord({ client, stats: JSON.parse(event.data).nodes }));
    source.addEventListener("reconnect", (event) =>
      graphappRecord({ client, reconnect: JSON.parse(event.data).retry }));
  }
}"""


class Doorman:
    """Stands at a port: counts each connection by its client and closes it."""

    def __init__(self) -> None:
        self.attempts: collections.Counter[str] = collections.Counter()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError, IndexError):
            line = await asyncio.wait_for(reader.readline(), 2)
            target = urlsplit(line.split()[1].decode())
            client = parse_qs(target.query).get("client", [f"page {target.path}"])[0]
            self.attempts[client] += 1
        writer.close()

    @contextlib.asynccontextmanager
    async def at(self, port: int) -> AsyncIterator[Doorman]:
        server = await asyncio.start_server(self._answer, "127.0.0.1", port, reuse_address=True)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


class Clients:
    """What every client reported, by client: the node counts it was shown and
    the retries it was told."""

    def __init__(self) -> None:
        self.stats: dict[str, list[int]] = collections.defaultdict(list)
        self.retries: dict[str, list[int]] = collections.defaultdict(list)

    def report(self, record: dict[str, Any]) -> None:
        if "stats" in record:
            self.stats[record["client"]].append(record["stats"])
        elif "reconnect" in record:
            self.retries[record["client"]].append(record["reconnect"])

    async def until(self, done: Callable[[], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not done():
            assert time.monotonic() < deadline, f"{what} within {within} s: {dict(self.stats)}"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def node_clients(
    server: LiveServer, session_id: str, clients: Clients
) -> AsyncIterator[None]:
    assert STORM.with_name("node_modules").exists(), "run `make node-clients`"
    process = await asyncio.create_subprocess_exec(
        "node",
        str(STORM),
        f"{server.url}/graph/events/",
        session_id,
        str(NODE_CLIENTS),
        stdout=asyncio.subprocess.PIPE,
    )

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            clients.report(json.loads(line))

    reading = asyncio.create_task(read())
    try:
        yield
    finally:
        process.kill()
        await process.wait()
        await reading


@contextlib.asynccontextmanager
async def browser_pages(
    server: LiveServer, session_id: str, clients: Clients
) -> AsyncIterator[Page]:
    """Chromium with plain EventSources on one page; the live page, returned."""
    async with chromium_with_session(server, session_id) as context:
        plain = await context.new_page()
        await plain.expose_function("graphappRecord", clients.report)
        await plain.goto(f"{server.url}/graph/api/stats/")
        await plain.evaluate(PLAIN_SOURCES, BROWSER_SOURCES)
        live = await context.new_page()
        await live.goto(f"{server.url}/graph/live/")
        await live.wait_for_selector('.graphapp-state[data-state="live"]')
        yield live


def everyone(clients: Clients, shown: int) -> Callable[[], bool]:
    names = [f"n{i}" for i in range(NODE_CLIENTS)] + [f"c{i}" for i in range(BROWSER_SOURCES)]
    return lambda: all(len(clients.stats[name]) >= shown for name in names)


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("GRAPHAPP_REQUIRE_SERVICES") != "1",
    reason="Debian's chromium is not installed (make chromium installs it)",
)
async def test_a_restart_costs_each_client_about_one_attempt_a_second_and_all_come_back(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    clients, doorman = Clients(), Doorman()
    async with logged_in(server, "editor") as editor:
        session_id = editor.cookies["sessionid"]
    async with (
        node_clients(server, session_id, clients),
        browser_pages(server, session_id, clients) as live,
    ):
        await clients.until(everyone(clients, 1), 20, "every client's first snapshot")
        port = server.port
        await asyncio.to_thread(server.stop)
        async with doorman.at(port):
            await live.wait_for_selector('.graphapp-state[data-state="reconnecting"]')
            await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(server.start, setup=False, port=port)
        await clients.until(everyone(clients, 2), BACK_WITHIN, "every client back")
        await live.wait_for_selector(
            '.graphapp-state[data-state="live"]', timeout=BACK_WITHIN * 1000
        )
    # The drain told every standard client to wait a second at least.
    told = [retry for retries in clients.retries.values() for retry in retries]
    assert len(told) >= NODE_CLIENTS + BROWSER_SOURCES
    assert min(told) >= RECONNECT_AFTER_MS
    # Each kept to it while the server was down, and each did try.
    attempts = doorman.attempts
    assert set(attempts) >= set(clients.stats) | {"page /graph/events/"}, attempts
    assert max(attempts.values()) <= MOST_ATTEMPTS, attempts
