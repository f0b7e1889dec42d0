"""Stream limits, disconnect storms, readers that stop reading, and shutdown on SIGTERM.

Real servers (daphne, and uvicorn for shutdown), real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from channels_redis.core import RedisChannelLayer

from graphapp.limits import StreamLimits, StreamRefused
from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS
from tests.live import (
    LiveServer,
    group_members,
    logged_in,
    login,
    stream,
    wait_for_health,
)
from tests.services import RedisServer

pytestmark = pytest.mark.e2e


def rss_kib(server: LiveServer) -> int:
    """The server process's resident memory, from /proc."""
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


async def open_raw(
    server: LiveServer, session: str, *, receive_buffer: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare socket that has asked for the stream (and read nothing yet)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if receive_buffer:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    writer.write(
        f"GET /graph/events/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Cookie: sessionid={session}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def test_limits_count_per_user_and_release_once() -> None:
    limits = StreamLimits()
    first = limits.acquire("u")
    limits.acquire("u")
    second_user = limits.acquire("v")
    assert limits.total == 3
    first.release()
    first.release()  # twice: counted once
    assert limits.total == 2
    assert limits.per_user == {"u": 1, "v": 1}
    second_user.release()
    assert "v" not in limits.per_user
    limits.draining = True
    with pytest.raises(StreamRefused) as refused:
        limits.acquire("w")
    assert refused.value.status == 503
    assert limits.total == 1


async def test_streams_beyond_the_limits_get_429_or_503_with_retry_after(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(
        application=stream_application,
        graphapp={"MAX_CONNECTIONS": 3, "MAX_CONNECTIONS_PER_USER": 2, "RETRY": 2500},
    )
    async with (
        logged_in(server, "viewer") as viewer,
        logged_in(server, "editor") as editor,
        logged_in(server, "admin") as admin,
    ):
        async with stream(viewer) as first, stream(viewer):
            await first.next_stats()
            too_many_for_user = await viewer.get("/graph/events/")
            assert too_many_for_user.status_code == 429
            assert too_many_for_user.headers["Retry-After"] == "3"  # 2.5 s, rounded up
            assert "at most 2" in too_many_for_user.json()["error"]
            assert "Cookie" in too_many_for_user.headers["Vary"]

            async with stream(editor) as third:
                await third.next_stats()
                full = await admin.get("/graph/events/")
                assert full.status_code == 503
                assert full.headers["Retry-After"] == "3"
                assert "maximum of 3" in full.json()["error"]
                report = (await admin.get("/graph/api/health/")).json()
                assert report["connections"] == 3
        # Both of viewer's slots came back when its streams closed.
        await wait_for_health(server, connections=0, streams=0)
        async with stream(viewer) as again:
            assert (await again.next_stats())["nodes"] >= 0


async def test_disconnect_storm_leaves_no_streams_tasks_members_or_memory(
    make_server: Any,
) -> None:
    server = make_server(graphapp={"MAX_CONNECTIONS_PER_USER": 1000})
    async with logged_in(server, "viewer") as viewer:
        session = viewer.cookies["sessionid"]

    async def one(kind: int) -> None:
        reader, writer = await open_raw(server, session)
        try:
            if kind == 1:  # leaves once the headers came
                await reader.readuntil(b"\r\n\r\n")
            elif kind == 2:  # leaves once the first snapshot came
                await reader.readuntil(b"event: stats")
            # kind 0: leaves at once, before any answer
        finally:
            await close_raw(writer)

    async def storm(clients: int) -> None:
        for start in range(0, clients, 100):
            await asyncio.gather(*(one(i % 3) for i in range(start, start + 100)))

    idle = await wait_for_health(server, streams=0)
    # Warm-up: imports, caches, and the allocator's arenas, which on Python 3.13
    # settle only after a storm of this size (then grow no more, round after round).
    await storm(1000)
    warm = await wait_for_health(server, streams=0, connections=0, subscribed=False)
    before = rss_kib(server)
    await storm(1000)
    after = await wait_for_health(server, streams=0, connections=0, subscribed=False)
    grown = rss_kib(server) - before

    assert after["tasks"] <= max(idle["tasks"], warm["tasks"])
    for _ in range(100):
        if await group_members(server) == 0:
            break
        await asyncio.sleep(0.05)
    assert await group_members(server) == 0
    # An open stream costs about 60 KiB: 1,000 leaked would show as 60 MiB. RSS
    # moves by a few MiB between runs for no reason of ours (arenas, caches).
    assert grown < 10 * 1024, f"RSS grew by {grown} KiB over 1,000 connect-and-drop clients"


@pytest.mark.services
async def test_reader_that_never_reads_holds_no_growing_queue(
    make_server: Any, tmp_path: Path
) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        server = make_server(redis_url=broker.url)
        layer = RedisChannelLayer(hosts=[broker.url], prefix=server.redis_prefix)
        async with logged_in(server, "viewer") as viewer:
            session = viewer.cookies["sessionid"]
            _, stalled = await open_raw(server, session, receive_buffer=4096)
            async with stream(viewer) as reader:
                base = await reader.next_stats()
                await wait_for_health(server, streams=2)
                before = rss_kib(server)
                # 10,000 distinct snapshots of about 8 KiB each, straight onto the
                # group: 80 MiB if the stalled client's share were queued. In
                # chunks that stay below the layer's channel capacity (100):
                # a burst beyond it would be dropped by the layer, not by us.
                pad = "x" * 8192
                last = base["version"] + 10_000

                async def send(version: int) -> None:
                    data = json.dumps({**base, "version": version, "pad": pad})
                    message = {"type": "graph.stats", "version": version, "data": data}
                    await layer.group_send("graphapp.stats", {**message, "state": str(version)})

                for start in range(base["version"] + 1, last + 1, 50):
                    await asyncio.gather(*map(send, range(start, min(start + 50, last + 1))))
                    await asyncio.sleep(0.02)
                # The last one once more, as the publisher does after a burst
                # (RESEND_AFTER): on a slow host the hub's channel may have been
                # full when it came, and the layer dropped it.
                await asyncio.sleep(0.5)
                await send(last)
                received = 0
                while True:
                    event = await reader.next_stats()
                    received += 1
                    if event["version"] == last:
                        break
                grown = rss_kib(server) - before
            await close_raw(stalled)
    finally:
        broker.stop()
    # The reader that reads kept up and ended on the last snapshot, having been
    # sent the latest one at each turn rather than all 10,000.
    assert received < 10_000
    assert grown < 4 * 1024, f"RSS grew by {grown} KiB with a client that never reads"


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
async def test_sigterm_ends_every_stream_with_a_quick_retry_then_the_server_exits(
    make_server: Any, stream_application: str, server_kind: str
) -> None:
    server = make_server(
        application=stream_application, server=server_kind, graphapp={"RETRY": 3000}
    )
    clients = [await login(server, "viewer") for _ in range(3)]
    bodies: list[bytes] = []

    async def read_to_the_end(client: httpx.AsyncClient, opened: asyncio.Event) -> None:
        body = b""
        async with client.stream("GET", "/graph/events/") as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                body += chunk
                if b"event: stats" in body:
                    opened.set()
        bodies.append(body)  # reached only when the response ended cleanly

    try:
        opened = [asyncio.Event() for _ in clients]
        readers = [
            asyncio.create_task(read_to_the_end(client, event))
            for client, event in zip(clients, opened, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 10)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        exit_code = await asyncio.to_thread(server.process.wait, 15)
    finally:
        for client in clients:
            await client.aclose()

    assert exit_code in (0, -signal.SIGTERM), server.log()
    for body in bodies:
        retries = [int(value) for value in re.findall(rb"^retry: (\d+)$", body, re.MULTILINE)]
        # The stream's own hint first, then the drain's "come back after a second" last.
        assert retries[0] == 3000
        assert len(retries) == 2, body
        assert RECONNECT_AFTER_MS <= retries[-1] <= RECONNECT_AFTER_MS + MIN_SPREAD_MS
        assert body.endswith(b"\n\n")
    log = server.log()
    assert "SIGTERM: ending 3 stream(s)" in log
    assert "still open at shutdown" not in log  # they ended, not the timeout


async def test_a_signal_the_server_ignores_stays_ignored(make_server: Any) -> None:
    # Started from a non-interactive shell in the background (an entrypoint
    # script's "daphne ... &"), a process inherits SIGINT ignored. graphapp's
    # handler must not turn that signal into a drain that never ends: streams
    # cut, and every new one refused with 503 while the server runs on.
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = make_server()
    finally:
        signal.signal(signal.SIGINT, ignored)
    async with logged_in(server, "viewer") as viewer, stream(viewer) as events:
        await events.next_stats()
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        report = await wait_for_health(server, streams=1)
        assert report["draining"] is False
        again = await viewer.get("/graph/api/stats/")
        assert again.status_code == 200
        async with stream(viewer) as second:
            await second.next_stats()
        assert server.process.poll() is None
    assert "SIGINT: ending" not in server.log()


async def test_anonymous_visitors_of_a_public_graph_are_not_one_user(
    make_server: Any, stream_application: str
) -> None:
    # With a check that lets anyone read, anonymous visitors all have pk None:
    # counted as one user, the second browser (or the 21st by default) was
    # refused, and one client holding MAX_CONNECTIONS_PER_USER streams locked
    # every other visitor out.
    server = make_server(
        application=stream_application,
        graphapp={"VIEW_PERMISSION_CHECK": "tests.layers.anyone", "MAX_CONNECTIONS_PER_USER": 1},
    )
    async with (
        httpx.AsyncClient(base_url=server.url) as first_visitor,
        httpx.AsyncClient(base_url=server.url) as second_visitor,
        stream(first_visitor) as first,
    ):
        await first.next_stats()
        async with stream(second_visitor) as second:
            assert second.response is not None
            assert second.response.status_code == 200
            await second.next_stats()
