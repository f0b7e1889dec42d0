"""The fault matrix of issue 12 ("Always the truth"), on two real server processes.

Every case ends the same way: within CONVERGENCE (5 s) of the last committed
write, or of the fault's end when that is later, every open stream's latest
``stats`` event and a new stream's first event equal what ``manage.py
graph_stats`` prints (tests/faults.py: ``everything_shows_the_truth``).

A publisher thread that crashes before it sends loses its messages the way
``test_lost_group_messages_are_made_good_by_the_database`` loses them: nothing
reaches the group, and only the processes' own look at the database can tell
their streams. That case covers it.

The harness's own tests come first: a fault test is only as good as the fault.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import Servers
from tests.faults import (
    SQL_NODES,
    Watcher,
    is_postgresql,
    table_away,
    table_locked,
    truth,
    write_with_sql,
)
from tests.live import EVENT_TIMEOUT, ROOT, LiveServer, logged_in
from tests.services import RedisServer

pytestmark = pytest.mark.e2e

#: Seconds a fault lasts (a broker hung or down, a table away).
FAULT = 6.0
#: The publisher's SEND_TIMEOUT in the broker cases: every send it makes during
#: the fault, and every resend, has timed out before the fault ends (with the
#: default 5 s a send made during a 6 s pause would still get through).
SEND_TIMEOUT = 1.0
SHIFT = 600.0  # ten minutes
FAULTY_LAYER = "tests.layers.FaultyRedisChannelLayer"


async def hold_until(moment: float) -> None:
    """Keep a fault on until time.monotonic() reaches ``moment`` (its length is
    part of the case, not a wait for something to happen)."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# -- the harness ---------------------------------------------------------------


def test_shifted_clock_moves_the_wall_clock_and_not_the_waits() -> None:
    code = (
        "import datetime, threading, time; started = time.monotonic(); "
        "threading.Event().wait(0.2); "
        "print(time.time(), time.time_ns() / 1e9, "
        "datetime.datetime.now(datetime.UTC).timestamp(), time.monotonic() - started)"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.shifted_clock", str(-SHIFT), "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    seconds, nanoseconds, now, waited = map(float, result.stdout.split())
    real = time.time()
    for shifted in (seconds, nanoseconds, now):
        assert real - shifted == pytest.approx(SHIFT, abs=10)
    assert 0.2 <= waited < 5, "a timed wait took its real time"


async def test_watcher_records_stats_status_and_disorder(tmp_path: Path) -> None:
    """Against canned streams: what the watcher makes of stats, status and ids."""
    stats = {"type": "update", "nodes": 1, "edges": 0, "avg_entanglement": 0.0}
    stats |= {"tiers": {"HOT": 1, "WARM": 0, "COLD": 0}, "types": {"FACT": 1}}
    shown = {key: stats[key] for key in ("nodes", "edges", "avg_entanglement", "tiers", "types")}

    def event(name: str, data: object, id: int | None = None) -> bytes:
        lines = [f"event: {name}", *([f"id: {id}"] if id is not None else [])]
        return ("\n".join([*lines, f"data: {json.dumps(data)}"]) + "\n\n").encode()

    stale = {"state": "stale", "confirmed_at": None, "version": 5}
    scripts = [
        [event("stats", stats, 5), event("status", stale), event("stats", stats, 4)],
        [event("stats", stats, 1), event("status", {**stale, "state": "live"})],
    ]
    ended = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for chunk in scripts.pop(0):
            writer.write(chunk)
        await writer.drain()
        await ended.wait()
        writer.close()

    canned = await asyncio.start_server(serve, "127.0.0.1", 0)
    site = LiveServer(tmp_path, port=canned.sockets[0].getsockname()[1])
    watcher = Watcher()
    try:
        await watcher.watch_with(httpx.AsyncClient(base_url=site.url), site, 1)
        await watcher.told("stale", within=EVENT_TIMEOUT)
        with pytest.raises(AssertionError, match=r"ids out of order: \[\"5 then '4'\"\]"):
            await watcher.converged(shown, within=0.5)
        await watcher.forget(site)
        await watcher.watch_with(httpx.AsyncClient(base_url=site.url), site, 1)
        await watcher.told("live", within=EVENT_TIMEOUT)
        await watcher.converged(shown, within=EVENT_TIMEOUT)
        with pytest.raises(AssertionError, match="not every stream showed the truth"):
            await watcher.converged({**shown, "nodes": 2}, within=0.2)
    finally:
        ended.set()
        await watcher.close()
        canned.close()
        await canned.wait_closed()


@pytest.mark.services
def test_redis_server_pauses_resumes_dies_and_restarts_empty(tmp_path: Path) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    try:

        def client() -> redis.Redis:
            return redis.Redis(
                port=broker.port,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
                retry=Retry(NoBackoff(), 0),
            )

        client().set("kept", "yes")
        broker.pause()
        with pytest.raises(redis.TimeoutError):
            client().get("kept")
        broker.resume()
        assert client().get("kept") == b"yes"
        broker.kill()
        with pytest.raises(redis.ConnectionError):
            client().ping()
        broker.restart_empty()
        assert client().get("kept") is None
    finally:
        broker.stop()


async def test_truth_and_the_sql_writer(servers: Servers) -> None:
    (server,) = servers.start(1)
    before = await truth(server)
    write_with_sql(server)
    after = await truth(server)
    async with logged_in(server, "viewer") as viewer:
        served = (await viewer.get("/graph/api/stats/")).json()
    assert after["nodes"] == before["nodes"] + len(SQL_NODES)
    assert after["edges"] == before["edges"] + 1
    for node_type, _ in SQL_NODES:
        assert after["types"][node_type] == before["types"][node_type] + 1
    assert after["tiers"]["WARM"] == before["tiers"]["WARM"] + 1
    assert after["tiers"]["COLD"] == before["tiers"]["COLD"] + 1
    assert after["avg_entanglement"] > 0
    assert {key: served[key] for key in after} == after, "truth() is what a server computes"
    # The rename that the database-failure cases use, both ways.
    with table_away(server, "graphapp_node"):
        failing = await asyncio.to_thread(server.manage, "graph_stats")
    assert failing.returncode != 0
    assert await truth(server) == after
    if is_postgresql(server):
        with table_locked(server, "graphapp_node"), psycopg.connect(server.database_url) as other:
            held = other.execute(
                "SELECT mode FROM pg_locks WHERE relation = 'graphapp_node'::regclass"
            ).fetchall()
        assert ("AccessExclusiveLock",) in held
