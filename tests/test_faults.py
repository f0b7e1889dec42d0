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
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import services
from tests.conftest import Servers
from tests.faults import (
    CONVERGENCE,
    SQL_NODES,
    Watcher,
    everything_shows_the_truth,
    first_events,
    is_postgresql,
    saves,
    table_away,
    table_locked,
    truth,
    wait_for_state,
    watching,
    write_with_sql,
)
from tests.live import EVENT_TIMEOUT, ROOT, LiveServer, create_node, group_members, logged_in
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


# -- the broker ----------------------------------------------------------------


def _hang(broker: RedisServer) -> Callable[[], None]:
    broker.pause()
    return broker.resume


def _kill(broker: RedisServer) -> Callable[[], None]:
    broker.kill()
    # No group, no membership afterwards: the hubs must join again.
    return broker.restart_empty


@pytest.mark.services
@pytest.mark.parametrize(
    ("fault", "label"),
    [(_hang, "while the broker hangs"), (_kill, "while the broker is down")],
    ids=["hung-during-a-burst-then-resumed", "killed-then-restarted-empty"],
)
async def test_a_broker_fault(
    servers: Servers,
    tmp_path: Path,
    fault: Callable[[RedisServer], Callable[[], None]],
    label: str,
) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        a, b = servers.start(
            2, services_run=True, redis_url=broker.url, graphapp={"SEND_TIMEOUT": SEND_TIMEOUT}
        )
        async with (
            logged_in(a, "editor") as on_a,
            logged_in(b, "editor") as on_b,
            watching(a, b) as watcher,
        ):
            await watcher.converged(await truth(a), EVENT_TIMEOUT)
            end_fault = fault(broker)
            began = time.monotonic()
            await saves([(on_a, a), (on_b, b)], each=5, label=label)
            await hold_until(began + FAULT)
            end_fault()
            await everything_shows_the_truth(watcher, [a, b], since=time.monotonic())
    finally:
        broker.stop()


@pytest.mark.services
async def test_lost_group_messages_are_made_good_by_the_database(
    servers: Servers, tmp_path: Path
) -> None:
    # Also the case of a publisher thread that crashed: its messages never reach
    # the group either, and only each process's look at the database is left.
    flag = tmp_path / "drop-group-messages"
    a, b = servers.start(
        2,
        services_run=True,
        extra_env={"TEST_REDIS_BACKEND": FAULTY_LAYER, "TEST_DROP_FLAG": str(flag)},
    )
    async with (
        logged_in(a, "editor") as on_a,
        logged_in(b, "editor") as on_b,
        watching(a, b) as watcher,
    ):
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        flag.touch()  # from here on every group message is lost, to the end of the check
        last = await saves([(on_a, a), (on_b, b)], each=5, label="lost")
        await everything_shows_the_truth(watcher, [a, b], since=last)
        assert "dropped a message" in a.log() + b.log(), "the fault happened"
        flag.unlink()
        last = await saves([(on_b, b)], each=1, label="delivered")
        await everything_shows_the_truth(watcher, [a, b], since=last)


# -- the clock -----------------------------------------------------------------


@pytest.mark.services
async def test_clocks_ten_minutes_apart_still_show_every_save(servers: Servers) -> None:
    ahead, behind = servers.start(
        2, services_run=True, each=[{"clock_shift": SHIFT}, {"clock_shift": -SHIFT}]
    )
    for server in (ahead, behind):
        assert server.process is not None
        command = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()  # noqa: ASYNC240
        assert b"tests.shifted_clock" in command
    async with (
        logged_in(ahead, "editor") as on_ahead,
        logged_in(behind, "editor") as on_behind,
        watching(ahead, behind) as watcher,
    ):
        await watcher.converged(await truth(ahead), EVENT_TIMEOUT)
        last = await saves([(on_ahead, ahead)], each=2, label="ahead")
        await everything_shows_the_truth(watcher, [ahead, behind], since=last)
        # Saved later, stamped 20 minutes earlier by its host's clock.
        last = await saves([(on_behind, behind)], each=2, label="behind")
        await everything_shows_the_truth(watcher, [ahead, behind], since=last)


# -- writers outside the servers ---------------------------------------------------


async def test_a_writer_using_raw_sql_reaches_every_stream(servers: Servers) -> None:
    # Embedded run: two daphne processes on one SQLite file, an in-memory layer
    # each. Services run: PostgreSQL and Redis.
    a, b = servers.start(2)
    async with watching(a, b) as watcher:
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        await asyncio.to_thread(write_with_sql, a)
        await everything_shows_the_truth(watcher, [a, b], since=time.monotonic())


async def test_a_management_command_writing_reaches_every_stream(servers: Servers) -> None:
    a, b = servers.start(2)
    async with watching(a, b) as watcher:
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        seeded = await asyncio.to_thread(a.manage, "graph_seed", "--nodes", "50")
        assert seeded.returncode == 0, seeded.stderr
        await everything_shows_the_truth(watcher, [a, b], since=time.monotonic())


# -- a process killed --------------------------------------------------------------


async def test_a_killed_process_leaves_the_other_converging(servers: Servers) -> None:
    a, b = servers.start(2)
    async with logged_in(b, "editor") as on_b, watching(a, b) as watcher:
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        assert a.process is not None
        a.process.kill()
        a.process.wait(10)
        await watcher.forget(a)
        last = await saves([(on_b, b)], each=3, label="after a died")
        await everything_shows_the_truth(watcher, [b], since=last)


@pytest.mark.services
async def test_a_killed_process_leaves_the_redis_group(servers: Servers) -> None:
    expiry = 5
    a, b = servers.start(
        2,
        services_run=True,
        # A capacity of 2: a member nobody reads is over capacity after 2 messages.
        extra_env={
            "REDIS_GROUP_EXPIRY": str(expiry),
            "TEST_REDIS_BACKEND": FAULTY_LAYER,
            "TEST_REDIS_CAPACITY": "2",
        },
    )
    async with logged_in(b, "editor") as on_b, watching(a, b) as watcher:
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        assert await group_members(b) == 2
        assert a.process is not None
        a.process.kill()
        a.process.wait(10)
        killed = time.monotonic()
        await watcher.forget(a)
        # Ordinary traffic meanwhile: channels-redis forgets expired members when
        # it sends to the group.
        members = 2
        while time.monotonic() < killed + expiry + 3:
            await create_node(on_b, b, content="while a lies dead")
            members = await group_members(b)
            if members == 1:
                break
            await asyncio.sleep(0.3)
        assert members == 1, f"the dead process still in the group {expiry + 3} s after"
        assert "over capacity" in b.log(), "the dead member filled up: the fault happened"
        mark = len(b.log())
        last = await saves([(on_b, b)], each=5, label="after the dead member left")
        await everything_shows_the_truth(watcher, [b], since=last)
        assert "over capacity" not in b.log()[mark:]


@pytest.mark.services
def test_by_default_a_dead_processs_membership_lasts_minutes_not_a_day(tmp_path: Path) -> None:
    site = LiveServer(tmp_path, redis_url=services.REDIS_URL, redis_prefix="graphapp-expiry")
    shown = site.manage(
        "shell",
        "-c",
        "from channels.layers import get_channel_layer; print(get_channel_layer().group_expiry)",
    )
    assert shown.returncode == 0, shown.stderr
    # The last line: Django's shell may first say what it imported.
    assert int(shown.stdout.split()[-1]) <= 120


# -- the database --------------------------------------------------------------


async def test_a_failing_database_makes_the_streams_stale_then_live(servers: Servers) -> None:
    a, b = servers.start(2)
    async with logged_in(a, "editor") as on_a, watching(a, b) as watcher:
        last = await saves([(on_a, a)], each=1, label="before the failure")
        await everything_shows_the_truth(watcher, [a, b], since=last)
        with table_away(a):
            failed = time.monotonic()
            await watcher.told("stale", within=CONVERGENCE)
            for server in (a, b):
                await wait_for_state(server, "stale", within=CONVERGENCE)
            # A stream opened now: the latest statistics, then the word that
            # they are not confirmed.
            (name, _), (status, told) = await first_events(b, count=2)
            assert (name, status, told["state"]) == ("stats", "status", "stale"), told
            assert {"confirmed_at", "version"} <= set(told)
            await hold_until(failed + FAULT)
        back = time.monotonic()
        await watcher.told("live", within=CONVERGENCE)
        await everything_shows_the_truth(watcher, [a, b], since=back)
        for server in (a, b):
            await wait_for_state(server, "live", within=CONVERGENCE)


@pytest.mark.services
async def test_a_database_that_does_not_answer_makes_the_streams_stale(servers: Servers) -> None:
    a, b = servers.start(2, services_run=True)
    async with watching(a, b) as watcher:
        await watcher.converged(await truth(a), EVENT_TIMEOUT)
        with table_locked(a):
            hung = time.monotonic()
            # The check's own time-out first, then the stale word.
            await watcher.told("stale", within=2 * CONVERGENCE)
            await wait_for_state(a, "stale", within=CONVERGENCE)
            await hold_until(hung + FAULT)
        back = time.monotonic()
        await watcher.told("live", within=CONVERGENCE)
        await everything_shows_the_truth(watcher, [a, b], since=back)
