"""graphsite under each supported ASGI server, and restarts that refuse no connection.

Real servers (see tests/live.py and docs/deployment-servers.md), real SSE
clients, writes through the JSON API into the server's database.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
from playwright.async_api import async_playwright

from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS
from tests import services
from tests.conftest import Servers
from tests.live import (
    APPLICATION,
    ROOT,
    EventStream,
    LiveServer,
    ReconnectingStream,
    ServerTLS,
    create_node,
    listening_socket,
    logged_in,
    login,
    server_options,
    stream,
)
from tests.test_browser import ARGS as BROWSER_ARGS
from tests.test_browser import CHROMIUM, sign_in

RETRY = 3000  # the stream's own hint; the drain's is a second and a spread
ALL_KINDS = ["daphne", "uvicorn", "gunicorn", "granian", "hypercorn"]
# The servers that serve on an inherited listening socket (granian binds its own).
FD_KINDS = ["daphne", "uvicorn", "gunicorn", "hypercorn"]
H2_STREAMS = 10  # more than a browser's 6 connections per host
WORKER_STREAMS = 6  # over two workers: the kernel spreads them, maybe not evenly
STREAMS = 10  # of one viewer: under MAX_CONNECTIONS_PER_USER, with the probe's


async def exit_code(server: LiveServer, within: float = 15.0) -> int:
    assert server.process is not None
    return await asyncio.to_thread(server.process.wait, within)


def assert_drained(server: LiveServer, streams: int, *, nothing_cut: bool = True) -> None:
    """The drain ended ``streams`` streams, and (``nothing_cut``) the server cancelled no
    request: Django's handler, cancelled, leaves its disconnect listener's error unread."""
    log = server.log()
    assert f"SIGTERM: ending {streams} stream(s)" in log, log
    assert "still open at shutdown" not in log  # they ended, not the timeout
    if nothing_cut:
        assert "Task exception was never retrieved" not in log


@pytest.mark.e2e
# graphapp.daphne: daphne bounding request bodies (graphapp/daphne.py), the same server.
@pytest.mark.parametrize("kind", [*ALL_KINDS, "graphapp.daphne"])
async def test_server_streams_an_update_then_drains_on_sigterm(make_server: Any, kind: str) -> None:
    server = make_server(server=kind, graphapp={"RETRY": RETRY})
    async with logged_in(server, "editor") as editor, stream(editor) as events:
        before = await events.current()
        await create_node(editor, server)
        after = await events.next_stats()
        assert after["nodes"] == before["nodes"] + 1
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await events.ended()  # raises if the stream was cut instead
    assert events.retries[0] == RETRY
    assert RECONNECT_AFTER_MS <= events.retries[-1] <= RECONNECT_AFTER_MS + MIN_SPREAD_MS, (
        events.retries
    )
    assert await exit_code(server) in (0, -signal.SIGTERM), server.log()
    assert_drained(server, 1)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn", "granian"])
async def test_with_two_worker_processes_each_drains_its_own_streams(
    make_server: Any, kind: str
) -> None:
    server = make_server(server=kind, workers=2, graphapp={"RETRY": RETRY})
    async with logged_in(server, "viewer") as viewer:
        streams = [EventStream(viewer) for _ in range(WORKER_STREAMS)]
        try:
            for events in streams:
                await events.open()
                await events.next_stats()
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            for events in streams:
                await events.ended()  # raises if the stream was cut instead
        finally:
            for events in streams:
                await events.close()
    assert await exit_code(server) in (0, -signal.SIGTERM), server.log()
    log = server.log()
    drained = [int(count) for count in re.findall(r"SIGTERM: ending (\d+) stream", log)]
    assert sum(drained) == WORKER_STREAMS, log
    assert "still open at shutdown" not in log


class Probe:
    """New connections one after another, each asking for a stream and reading its
    first frame, until stopped: what reconnecting browsers meet during a restart."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answers: list[int | str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Connection: close, so that every request is a new connect.
                headers = {"Connection": "close"}
                async with self.client.stream("GET", "/graph/events/", headers=headers) as answer:
                    async for _ in answer.aiter_raw():
                        break
                self.answers.append(answer.status_code)
            except httpx.TransportError as exc:
                self.answers.append(repr(exc))
            await asyncio.sleep(0.005)

    async def stop(self) -> list[int | str]:
        self._stop.set()
        await self._task
        return self.answers


def on_socket(servers: Servers, name: str, fd: int, *, setup: bool, **options: Any) -> LiveServer:
    """A server of the test's that serves on the listening socket ``fd``."""
    workdir = servers.workdir / name
    workdir.mkdir()
    server = LiveServer(workdir, **options)
    servers.started.append(server)
    server.start(setup=setup, fd=fd)
    return server


def got_a_snapshot(events: ReconnectingStream) -> bool:
    return any(events.connections)


def moved_on(events: ReconnectingStream) -> bool:
    """A connection after the first brought a snapshot: the new server's, once the old is gone."""
    return any(events.connections[1:])


def shows(events: ReconnectingStream, nodes: int) -> bool:
    latest = events.connections[-1] if events.connections else []
    return bool(latest) and latest[-1]["nodes"] == nodes


@pytest.mark.e2e
@pytest.mark.parametrize("kind", FD_KINDS)
async def test_the_next_process_takes_over_the_held_socket_and_no_connect_is_refused(
    servers: Servers, kind: str
) -> None:
    # What a systemd socket unit (deploy/systemd/) does in production: the
    # listening socket outlives every server process. The next one starts on
    # it beside the old, the old drains and exits; no connect meanwhile is
    # refused, no stream is refused (a 503 would stop an EventSource), and
    # every stream moves to the new one. A request the old one accepted in
    # its last instant may be closed unanswered (daphne: any still in flight
    # when it stops): a network error, from which an EventSource comes back.
    shared = servers.backing(services.enabled()) | {"server": kind}
    with listening_socket() as listener:
        fd = listener.fileno()
        old = on_socket(servers, "old", fd, setup=True, **shared)
        shared.setdefault("database_url", f"sqlite:///{old.workdir / 'db.sqlite3'}")
        viewer = await login(old, "viewer")
        streams = [ReconnectingStream(viewer) for _ in range(STREAMS)]
        try:
            for events in streams:
                await events.wait_until(functools.partial(got_a_snapshot, events))
            new = on_socket(servers, "new", fd, setup=False, **shared)
            probe = Probe(viewer)
            assert old.process is not None
            old.process.send_signal(signal.SIGTERM)
            assert await exit_code(old) in (0, -signal.SIGTERM), old.log()
            for events in streams:
                await events.wait_until(functools.partial(moved_on, events))
            answers = await probe.stop()
            async with logged_in(new, "editor") as editor:
                now = (await editor.get("/graph/api/stats/")).json()
                await create_node(editor, new)
                for events in streams:
                    await events.wait_until(functools.partial(shows, events, now["nodes"] + 1))
        finally:
            for events in streams:
                await events.close()
            await viewer.aclose()
    statuses = [answer for answer in answers if isinstance(answer, int)]
    assert set(statuses) == {200}, answers
    assert not [answer for answer in answers if "ConnectError" in str(answer)], answers
    for events in streams:
        assert not [failure for failure in events.failures if "ConnectError" in failure]
        moved = [events_of for events_of in events.connections[1:] if events_of]
        assert moved[0][0]["nodes"] == now["nodes"]  # a fresh snapshot first
    # The prober's requests keep coming: one in flight as the old one stops is cut.
    assert_drained(old, len(streams), nothing_cut=False)
    assert new.process is not None
    assert new.process.poll() is None


OPEN_EVENT_SOURCES = """(count) => {
    window.received = Array(count).fill(0);
    window.sources = [];
    for (let i = 0; i < count; i++) {
        const source = new EventSource("/graph/events/");
        source.addEventListener("stats", (event) => {
            window.received[i] = JSON.parse(event.data).nodes;
        });
        // Ended (by the drain): no reconnection into the closing server's TLS
        // connection, where hypercorn may fail (pgjones/hypercorn#261).
        source.addEventListener("error", () => source.close());
        window.sources.push(source);
    }
}"""


def note_stream(streams: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Keep the browser's view of each stream's response (protocol, connection)."""
    if event["response"]["url"].endswith("/graph/events/"):
        streams.append(event["response"])


def every_source_shows(nodes: int) -> str:
    return f"window.received.every((shown) => shown === {nodes})"


@pytest.mark.e2e
@pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("GRAPHAPP_REQUIRE_SERVICES") != "1",
    reason="Debian's chromium is not installed (make chromium installs it)",
)
@pytest.mark.parametrize(
    "kind",
    [
        "hypercorn",
        pytest.param(
            "granian",
            marks=pytest.mark.xfail(
                django.VERSION < (6, 0),
                reason="Chromium sends each cookie in a header of its own over HTTP/2; granian "
                "passes them on as they are (as ASGI says) and Django 5.2 joins them with "
                "commas, so the session is lost (Django ticket #36399)",
                strict=True,
            ),
        ),
    ],
)
async def test_over_http2_a_page_holds_more_streams_than_http1_connections_and_each_drains(
    make_server: Any, kind: str, tmp_path: Path
) -> None:
    # A browser opens at most 6 HTTP/1.1 connections to a host: a seventh
    # EventSource waits for one of them (graphapp's pages share one stream
    # between tabs in a SharedWorker for that reason). Over HTTP/2 each is a
    # stream of one connection: ten plain EventSources in one page are all live.
    server = make_server(server=kind, tls=ServerTLS.make(tmp_path), graphapp={"RETRY": RETRY})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page(ignore_https_errors=True)
            # Signed in, on a page without a stream of its own.
            await sign_in(page, server, "/graph/api/stats/", username="viewer")
            await page.wait_for_url(f"{server.url}/graph/api/stats/")
            before = await page.evaluate("fetch('/graph/api/stats/').then((r) => r.json())")
            devtools = await page.context.new_cdp_session(page)
            await devtools.send("Network.enable")
            streams: list[dict[str, Any]] = []
            devtools.on("Network.responseReceived", functools.partial(note_stream, streams))
            await page.evaluate(OPEN_EVENT_SOURCES, H2_STREAMS)
            await page.wait_for_function(every_source_shows(before["nodes"]))
            async with logged_in(server, "editor") as editor:
                await create_node(editor, server)
            await page.wait_for_function(every_source_shows(before["nodes"] + 1))
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            assert await exit_code(server) in (0, -signal.SIGTERM), server.log()
        finally:
            await browser.close()
    assert len(streams) == H2_STREAMS
    assert {answer["protocol"] for answer in streams} == {"h2"}
    assert len({answer["connectionId"] for answer in streams}) == 1  # all on one connection
    assert_drained(server, H2_STREAMS)


def test_the_systemd_recipe_runs_the_servers_as_the_restart_test_does() -> None:
    # deploy/systemd/ is the production form of the held-socket restart above:
    # its commands must stay the ones that test runs (systemd passes fd 3).
    unit = (ROOT / "deploy" / "systemd" / "graphapp@.service").read_text()
    commands = re.findall(r"^#?\s*ExecStart=(\S+) (.+)$", unit, re.MULTILINE)
    assert {Path(executable).name for executable, _ in commands} == {"uvicorn", "daphne"}
    for executable, arguments in commands:
        assert arguments.split() == [*server_options(Path(executable).name, 3), APPLICATION]
    assert re.search(r"^Sockets=graphapp\.socket$", unit, re.MULTILINE)
    socket_unit = (ROOT / "deploy" / "systemd" / "graphapp.socket").read_text()
    assert re.search(r"^Service=graphapp@\w+\.service$", socket_unit, re.MULTILINE)
