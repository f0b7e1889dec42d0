"""Several server processes on PostgreSQL and Redis: updates from any process reach all."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from tests import services
from tests.conftest import Servers
from tests.live import LiveServer, create_node, logged_in, login, stream
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.services]


async def test_a_save_on_one_process_reaches_the_streams_of_both(servers: Servers) -> None:
    a, b = servers.start(2, services_run=True)
    async with (
        logged_in(a, "editor") as on_a,
        logged_in(b, "viewer") as on_b,
        stream(on_a) as events_a,
        stream(on_b) as events_b,
    ):
        before = await events_b.current()
        await events_a.current()
        await create_node(on_a, a)
        seen_b, seen_a = await events_b.next_stats(), await events_a.next_stats()
    assert seen_b["nodes"] == seen_a["nodes"] == before["nodes"] + 1
    assert seen_b["version"] == seen_a["version"], "the same publication on both"


async def test_the_shell_and_commands_reach_every_process(servers: Servers) -> None:
    a, b = servers.start(2, services_run=True)
    async with (
        logged_in(a, "viewer") as on_a,
        logged_in(b, "viewer") as on_b,
        stream(on_a) as events_a,
        stream(on_b) as events_b,
    ):
        before = await events_a.current()
        await events_b.current()
        shell = a.manage(
            "shell",
            "-c",
            "from graphapp.models import Node; "
            "Node.objects.create(content='from the shell', node_type='FACT', momentum=0.9)",
        )
        assert shell.returncode == 0, shell.stderr
        from_shell = [await events_a.next_stats(), await events_b.next_stats()]
        decay = b.manage("graph_decay", "--hours", "100")
        assert decay.returncode == 0, decay.stderr
        from_command = [await events_a.next_stats(), await events_b.next_stats()]
    for event in from_shell:
        assert event["nodes"] == before["nodes"] + 1
        assert event["types"]["FACT"] == before["types"]["FACT"] + 1
    for event in from_command:
        # 100 hours of decay take every node down to the floor: all COLD.
        assert event["tiers"] == {"HOT": 0, "WARM": 0, "COLD": before["nodes"] + 1}


def database_sessions(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(services.DATABASE_URL) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
        ).fetchone()
    assert row is not None
    return int(row[0])


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Redis' own count of the commands it ran, by command (scripts' included)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_one_update_costs_the_broker_one_delivery_per_process(
    servers: Servers, tmp_path: Path
) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        # Pools of 10 connections for 100 streams each: a stream must not keep one.
        per_server = 100
        a, b = servers.start(
            2,
            services_run=True,
            redis_url=broker.url,
            extra_env={"DATABASE_POOL_SIZE": "10"},
            graphapp={"MAX_CONNECTIONS_PER_USER": per_server},
        )
        clients = [await login(server, "viewer") for server in (a, b) for _ in range(per_server)]
        streams = [stream(client) for client in clients]
        try:
            opened = await asyncio.gather(*(s.__aenter__() for s in streams))
            now = (await clients[0].get("/graph/api/stats/")).json()
            await asyncio.gather(*(events.current(now) for events in opened))
            assert database_sessions(a.database_url) <= 2 * 10
            counter = redis.Redis.from_url(broker.url)
            calls_before = command_calls(counter)
            async with logged_in(a, "editor") as editor:
                await create_node(editor, a)
            received = await asyncio.gather(*(events.next_stats() for events in opened))
            calls_after = command_calls(counter)
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)
            for client in clients:
                await client.aclose()
    finally:
        broker.stop()
    assert len({event["version"] for event in received}) == 1
    assert len(received) == 2 * per_server
    calls = {name: calls_after[name] - calls_before.get(name, 0) for name in calls_after}
    calls.pop("info", None)
    # channels-redis runs one ZADD into each member's channel and one into its
    # in-flight backup on receipt: 2 per process, not per stream; the 200 streams
    # are served from memory.
    assert calls["zadd"] == 2 * 2, calls
    assert sum(calls.values()) < 15 * 2, calls


async def read_until(
    server: LiveServer, client: httpx.AsyncClient, nodes: int, deadline: float
) -> float:
    """Reconnect like a browser until an event shows ``nodes``; when it came."""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, TimeoutError, AssertionError):
            async with stream(client) as events:
                while True:
                    event = await events.next_stats(within=max(deadline - time.monotonic(), 0.1))
                    if event["nodes"] == nodes:
                        return time.monotonic()
        await asyncio.sleep(0.2)
    raise AssertionError(f"no event with {nodes} nodes before the deadline")


async def test_redis_outage_keeps_saves_working_and_updates_resume(
    servers: Servers, tmp_path: Path
) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        (server,) = servers.start(
            1, services_run=True, redis_url=broker.url, graphapp={"RETRY": 500}
        )
        async with logged_in(server, "editor") as editor:
            nodes = (await editor.get("/graph/api/stats/")).json()["nodes"]
            broker.stop()
            for _ in range(3):
                await create_node(editor, server, content="while Redis is down")
                await asyncio.sleep(0.15)
            nodes += 3
            assert (await editor.get("/graph/api/stats/")).json()["nodes"] == nodes
            broker.start()
            back = time.monotonic()
            await create_node(editor, server, content="after Redis is back")
            arrived = await read_until(server, editor, nodes + 1, back + 5.0)
    finally:
        broker.stop()
    assert arrived - back < 5.0
    log = server.log()
    assert log.count("publishing to the channel layer failed") == 1, "once per outage"
    assert "channel layer reachable again" in log


async def test_a_stream_outlives_the_layers_group_expiry(servers: Servers) -> None:
    (server,) = servers.start(1, services_run=True, extra_env={"REDIS_GROUP_EXPIRY": "2"})
    async with logged_in(server, "editor") as editor, stream(editor) as events:
        before = await events.current()
        await asyncio.sleep(5)  # past two expiries: membership must have been renewed
        await create_node(editor, server)
        after = await events.next_stats()
    assert after["nodes"] == before["nodes"] + 1


async def test_after_a_burst_every_client_ends_on_the_final_state(servers: Servers) -> None:
    a, b = servers.start(2, services_run=True)
    writers = [await login(server, "editor") for server in (a, b) for _ in range(5)]
    readers = [await login(server, "viewer") for server in (a, b) for _ in range(20)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            opened = [await stack.enter_async_context(stream(c)) for c in readers]

            async def write(client: httpx.AsyncClient, server: LiveServer) -> None:
                for i in range(30):
                    await create_node(client, server, content=f"burst {i}", momentum=(i % 10) / 10)

            await asyncio.gather(
                *(write(client, a if index < 5 else b) for index, client in enumerate(writers))
            )
            final = (await readers[0].get("/graph/api/stats/")).json()
            # Each client reads until it holds the final state; a lost trailing
            # update would leave it waiting (and the test failing on time-out).
            last = await asyncio.gather(*(events.current(final) for events in opened))
    finally:
        for client in writers + readers:
            await client.aclose()
    assert {event["nodes"] for event in last} == {final["nodes"]}
    assert all(event["tiers"] == final["tiers"] for event in last)


async def test_a_logout_on_one_process_ends_that_sessions_streams_on_the_other(
    servers: Servers,
) -> None:
    a, b = servers.start(2, services_run=True, graphapp={"REVALIDATE_INTERVAL": 600})
    # The same session (one database, one secret) streams from process B.
    async with (
        logged_in(a, "viewer") as on_a,
        httpx.AsyncClient(base_url=b.url, cookies=on_a.cookies, timeout=10) as on_b,
        on_b.stream("GET", "/graph/events/") as streaming,
    ):
        assert streaming.status_code == 200
        logout = await on_a.post(
            "/accounts/logout/",
            data={"csrfmiddlewaretoken": on_a.cookies["csrftoken"]},
            headers={"X-CSRFToken": on_a.cookies["csrftoken"], "Referer": f"{a.url}/"},
        )
        assert logout.status_code in {200, 302}

        async def to_the_end() -> bytes:
            return b"".join([chunk async for chunk in streaming.aiter_raw()])

        body = await asyncio.wait_for(to_the_end(), 5.0)
    assert b"event: stats" in body
    assert "ended by their session's logout" in b.log()
