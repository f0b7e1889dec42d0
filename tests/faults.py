"""The harness of the fault matrix (tests/test_faults.py): the truth, streams that
watch it, writers outside Django, and database faults.

* :func:`truth`: what ``manage.py graph_stats`` prints, the statistics a stream
  must end on.
* :class:`Watcher`: several real SSE connections per server, each recording its
  latest ``stats`` and every ``status`` event; :meth:`Watcher.converged` waits,
  with a deadline, until every stream shows the truth, and otherwise fails with
  what each one shows.
* :func:`first_events`: what a stream opened now receives first.
* :func:`write_with_sql`, :func:`table_away`, :func:`table_locked`: rows and faults made with the
  database's own driver (psycopg, sqlite3), outside Django and graphapp.

The broker's faults are :class:`tests.services.RedisServer`'s (``pause``,
``resume``, ``kill``, ``restart_empty``); the clock's are
``LiveServer(clock_shift=...)`` (tests/shifted_clock.py); lost messages are
tests.layers.FaultyRedisChannelLayer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse
from psycopg import sql

from tests.live import EVENT_TIMEOUT, STATS_FIELDS, LiveServer, create_node, health, login

#: What the issue guarantees: every stream shows the truth this many seconds
#: after the last committed write (or the end of the fault, when that is later).
CONVERGENCE = 5.0

Stats = dict[str, Any]


def stats_of(data: dict[str, Any]) -> Stats:
    """The statistics fields of a snapshot, the part every event must get right."""
    return {key: data[key] for key in STATS_FIELDS}


async def truth(server: LiveServer) -> Stats:
    """The statistics ``manage.py graph_stats`` prints for ``server``'s database."""
    result = await asyncio.to_thread(server.manage, "graph_stats", "--indent", "0")
    assert result.returncode == 0, f"graph_stats failed:\n{result.stderr}"
    return stats_of(json.loads(result.stdout))


# -- streams -------------------------------------------------------------------


@dataclass
class Watched:
    """One open stream and what it has shown so far."""

    server: LiveServer
    number: int
    latest: Stats | None = None
    latest_id: int | None = None
    stats_events: int = 0
    statuses: list[dict[str, Any]] = field(default_factory=list)
    disorder: list[str] = field(default_factory=list)  # ids that did not increase
    ended: str = ""  # why the stream ended, "" while it is open

    @property
    def state(self) -> str:
        """What the stream was last told: "live" unless a status event said otherwise."""
        return str(self.statuses[-1].get("state")) if self.statuses else "live"

    def shows(self, expected: Stats) -> bool:
        return (
            not self.ended
            and not self.disorder
            and self.latest == expected
            and self.state == "live"
        )

    def describe(self) -> str:
        status = json.dumps(self.statuses[-1]) if self.statuses else "none"
        return (
            f"{self.server.url} stream {self.number}: "
            f"{'ENDED (' + self.ended + ')' if self.ended else 'open'}, "
            f"{self.stats_events} stats event(s), latest id {self.latest_id}, "
            f"latest stats {json.dumps(self.latest, sort_keys=True)}, last status {status}"
            + (f", ids out of order: {self.disorder}" if self.disorder else "")
        )


class Watcher:
    """Open SSE streams on several servers, each recording its latest statistics.

    Real sockets (httpx + httpx-sse), as a browser's EventSource holds them; a
    stream that the server ends is not reopened, and counts as not converged.
    """

    def __init__(self) -> None:
        self.streams: list[Watched] = []
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._changed = asyncio.Condition()

    async def watch(self, server: LiveServer, count: int = 3) -> list[Watched]:
        """Open ``count`` streams on ``server`` (as "viewer"); returns once each is open."""
        client = self._clients.get(server.url)
        if client is None:
            client = await login(server, "viewer")
            self._clients[server.url] = client
        return await self.watch_with(client, server, count)

    async def watch_with(
        self, client: httpx.AsyncClient, server: LiveServer, count: int
    ) -> list[Watched]:
        """Open ``count`` streams through ``client`` (which the watcher closes)."""
        self._clients[server.url] = client
        # An idle stream sends only heartbeats (15 s apart by default).
        client.timeout = httpx.Timeout(EVENT_TIMEOUT, read=None)
        opened = []
        for _ in range(count):
            watched = Watched(server, len(self.streams))
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._tasks[id(watched)] = asyncio.create_task(self._read(client, watched, ready))
            self.streams.append(watched)
            opened.append(watched)
            await asyncio.wait_for(asyncio.shield(ready), EVENT_TIMEOUT)
        return opened

    async def _read(
        self, client: httpx.AsyncClient, watched: Watched, ready: asyncio.Future[None]
    ) -> None:
        try:
            async with aconnect_sse(client, "GET", "/graph/events/") as source:
                answer = source.response
                if answer.status_code != 200:
                    raise SSEError(f"HTTP {answer.status_code}: {(await answer.aread())[:200]!r}")
                ready.set_result(None)
                async for event in source.aiter_sse():
                    await self._record(watched, event)
            watched.ended = "the server ended it"
        except (httpx.HTTPError, SSEError) as exc:
            watched.ended = f"{type(exc).__name__}: {exc}"
            if not ready.done():
                ready.set_exception(exc)
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _record(self, watched: Watched, event: ServerSentEvent) -> None:
        if not event.data or event.event not in {"stats", "status"}:
            return
        data = json.loads(event.data)
        async with self._changed:
            if event.event == "status":
                watched.statuses.append(data)
            else:
                watched.stats_events += 1
                watched.latest = stats_of(data)
                number = int(event.id) if event.id else None
                if number is None or (
                    watched.latest_id is not None and number <= watched.latest_id
                ):
                    watched.disorder.append(f"{watched.latest_id} then {event.id!r}")
                watched.latest_id = number
            self._changed.notify_all()

    async def until(self, done: Callable[[Watched], bool], within: float) -> list[Watched]:
        """Wait until ``done`` holds for every stream (at most ``within`` seconds);
        the streams for which it does not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with self._changed:
            while (failing := [s for s in self.streams if not done(s)]) and (
                left := deadline - loop.time()
            ) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
        return failing

    async def converged(self, expected: Stats, within: float) -> None:
        """Return when every stream's latest stats equal ``expected`` (and it is
        live), else fail with what each stream shows."""
        failing = await self.until(lambda watched: watched.shows(expected), within)
        assert not failing, report(expected, failing, within)

    async def told(self, state: str, within: float) -> None:
        """Return when every stream's last ``status`` event says ``state``."""
        failing = await self.until(lambda watched: watched.state == state, within)
        assert not failing, f"streams not told {state!r} within {within:.1f} s:\n" + "\n".join(
            watched.describe() for watched in failing
        )

    async def forget(self, server: LiveServer) -> None:
        """Stop watching ``server`` (one the test killed)."""
        for watched in [s for s in self.streams if s.server is server]:
            self.streams.remove(watched)
            await _cancel(self._tasks.pop(id(watched)))
        client = self._clients.pop(server.url, None)
        if client is not None:
            await client.aclose()

    async def close(self) -> None:
        for task in self._tasks.values():
            await _cancel(task)
        for client in self._clients.values():
            await client.aclose()
        self._tasks.clear()
        self._clients.clear()
        self.streams.clear()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def report(expected: Stats, failing: list[Watched], within: float) -> str:
    return f"not every stream showed the truth within {within:.1f} s\ntruth: " + "\n".join(
        [json.dumps(expected, sort_keys=True), *(watched.describe() for watched in failing)]
    )


@contextlib.asynccontextmanager
async def watching(*servers: LiveServer, per_server: int = 3) -> AsyncIterator[Watcher]:
    """A :class:`Watcher` with ``per_server`` streams open on each server."""
    watcher = Watcher()
    try:
        for server in servers:
            await watcher.watch(server, per_server)
        yield watcher
    finally:
        await watcher.close()


async def first_events(
    server: LiveServer, count: int = 1, within: float = EVENT_TIMEOUT
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` events (name, data) of a stream opened on ``server`` now."""
    events: list[tuple[str, dict[str, Any]]] = []
    client = await login(server, "viewer")
    try:
        async with asyncio.timeout(within), aconnect_sse(client, "GET", "/graph/events/") as source:
            assert source.response.status_code == 200, source.response.status_code
            async for event in source.aiter_sse():
                if event.data and event.event in {"stats", "status"}:
                    events.append((event.event, json.loads(event.data)))
                    if len(events) == count:
                        break
    except TimeoutError:
        raise AssertionError(
            f"a new stream on {server.url} got {events} within {within:.1f} s, not {count} event(s)"
        ) from None
    finally:
        await client.aclose()
    return events


async def everything_shows_the_truth(
    watcher: Watcher, servers: list[LiveServer], *, since: float, within: float = CONVERGENCE
) -> None:
    """The end of every case: ``within`` seconds after ``since`` (time.monotonic()
    of the last committed write, or of the fault's end), every open stream's
    latest stats equal graph_stats' truth, and so does a new stream's first event
    on each server in ``servers``."""
    expected = await truth(servers[0])
    left = max(since + within - time.monotonic(), 0.0)
    failing = await watcher.until(lambda watched: watched.shows(expected), left)
    problems = [watched.describe() for watched in failing]
    for server in servers:
        name, data = (await first_events(server))[0]
        if name != "stats" or stats_of(data) != expected:
            problems.append(f"{server.url}: a new stream's first event is {name} {data}")
    assert not problems, (
        f"not the truth {within:.1f} s after the last write or fault\ntruth: "
        + json.dumps(expected, sort_keys=True)
        + "\n"
        + "\n".join(problems)
    )


async def state_of(server: LiveServer) -> str:
    """What health says this server's streams are told ("live", "stale"; "" if nothing)."""
    return str((await health(server)).get("state", ""))


async def wait_for_state(server: LiveServer, state: str, within: float) -> dict[str, Any]:
    """Poll ``server``'s health until it reports ``state`` (bounded)."""
    deadline = time.monotonic() + within
    while True:
        report = await health(server)
        if report.get("state") == state or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert report.get("state") == state, f"health of {server.url} never said {state!r}: {report}"
    return report


# -- writers -------------------------------------------------------------------


async def saves(
    writers: list[tuple[httpx.AsyncClient, LiveServer]], each: int, label: str = "burst"
) -> float:
    """``each`` node saves through every writer's server, side by side; returns
    time.monotonic() once the last one is committed (answered)."""

    async def write(client: httpx.AsyncClient, server: LiveServer, number: int) -> None:
        for i in range(each):
            momentum = ((number + i) % 10) / 10
            await create_node(client, server, content=f"{label} {number}.{i}", momentum=momentum)

    await asyncio.gather(*(write(c, s, n) for n, (c, s) in enumerate(writers)))
    return time.monotonic()


#: Seconds a fault's ALTER TABLE or LOCK TABLE may wait for the servers' locks.
LOCK_TIMEOUT = 5.0


def is_postgresql(server: LiveServer) -> bool:
    return server.database_url.startswith(("postgres://", "postgresql://"))


def sqlite_path(server: LiveServer) -> Path:
    """The SQLite file ``server`` serves."""
    if server.database_url:
        assert server.database_url.startswith("sqlite:///"), server.database_url
        return Path(server.database_url.removeprefix("sqlite:///"))
    return server.workdir / "db.sqlite3"


@contextlib.contextmanager
def _sqlite(server: LiveServer) -> Iterator[sqlite3.Connection]:
    # timeout: how long a write waits for the servers' locks (SQLite's busy timeout).
    connection = sqlite3.connect(sqlite_path(server), timeout=LOCK_TIMEOUT, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _postgresql(server: LiveServer, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    # A lock that a server's open transaction holds must not make the test wait
    # without end: ALTER TABLE and LOCK TABLE give up after LOCK_TIMEOUT.
    return psycopg.connect(
        server.database_url,
        autocommit=autocommit,
        connect_timeout=5,
        options=f"-c lock_timeout={LOCK_TIMEOUT * 1000:.0f}",
    )


#: Rows written outside Django: a WARM CODE node and a COLD ENTITY node, joined.
SQL_NODES = (("CODE", 0.5), ("ENTITY", 0.1))
NODE_INSERT = (
    "INSERT INTO graphapp_node "
    "(content, node_type, momentum, created_at, last_accessed, decayed_at, metadata) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
EDGE_INSERT = (
    "INSERT INTO graphapp_edge (source_id, target_id, relation, weight, created_at) "
    "VALUES (%s, %s, %s, %s, %s)"
)


def write_with_sql(server: LiveServer) -> None:
    """Insert two nodes (:data:`SQL_NODES`) and an edge between them in one
    transaction, with the database's own driver: no Django, no signal, no message."""
    now = datetime.datetime.now(datetime.UTC)
    if is_postgresql(server):
        with _postgresql(server) as connection:
            ids = []
            for node_type, momentum in SQL_NODES:
                row = connection.execute(
                    NODE_INSERT,
                    ["written with SQL", node_type, momentum, now, now, now, "{}"],
                ).fetchone()
                assert row is not None
                ids.append(row[0])
            connection.execute(EDGE_INSERT, [ids[0], ids[1], "relates_to", 0.5, now])
        return
    # Django keeps SQLite times as naive UTC text, JSON as text.
    text = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    with _sqlite(server) as connection:
        connection.execute("BEGIN IMMEDIATE")
        ids = [
            connection.execute(
                NODE_INSERT.replace("%s", "?"),
                ["written with SQL", node_type, momentum, text, text, text, "{}"],
            ).fetchone()[0]
            for node_type, momentum in SQL_NODES
        ]
        connection.execute(
            EDGE_INSERT.replace("%s", "?"), [ids[0], ids[1], "relates_to", 0.5, text]
        )
        connection.execute("COMMIT")


def _quoted(name: str) -> str:
    # SQLite has no parameters for names; these are the tests' own constants.
    return '"' + name.replace('"', '""') + '"'


def rename_table(server: LiveServer, old: str, new: str) -> None:
    """``ALTER TABLE old RENAME TO new`` on ``server``'s database, outside Django."""
    if is_postgresql(server):
        with _postgresql(server, autocommit=True) as connection:
            connection.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(old), sql.Identifier(new)
                )
            )
        return
    with _sqlite(server) as connection:
        connection.execute(f"ALTER TABLE {_quoted(old)} RENAME TO {_quoted(new)}")


@contextlib.contextmanager
def table_away(server: LiveServer, table: str = "graphapp_version") -> Iterator[None]:
    """``table`` renamed away while the block runs: every read of it fails."""
    rename_table(server, table, f"{table}_away")
    try:
        yield
    finally:
        rename_table(server, f"{table}_away", table)


@contextlib.contextmanager
def table_locked(server: LiveServer, table: str = "graphapp_version") -> Iterator[None]:
    """PostgreSQL: ``table`` locked ACCESS EXCLUSIVE while the block runs, so that
    every read of it waits (a database that does not answer); the rest of the
    database works."""
    assert is_postgresql(server), "a lock of one table: PostgreSQL only"
    with _postgresql(server) as connection:
        connection.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        )
        try:
            yield
        finally:
            connection.rollback()
