"""The hub: fan-out of each message, and its own look at the database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test import override_settings

from graphapp import snapshots, versions, wire
from graphapp.hubs import Hub
from graphapp.mailbox import Subscriber
from graphapp.types import Snapshot

T = TypeVar("T")

FAST = {"VERIFY_INTERVAL": 0.05}


async def in_thread(job: Callable[..., T], *args: Any) -> T:
    """Run ``job`` in a thread and close that thread's connection after it
    (PostgreSQL drops no test database somebody is connected to)."""

    def run() -> T:
        try:
            return job(*args)
        finally:
            connections.close_all()

    return await sync_to_async(run)()


class SlowLoadHub(Hub):
    """A hub whose first snapshot takes long (a slow database)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.started = asyncio.Event()

    async def _refresh(self, *, replace: bool = False) -> None:
        self.started.set()
        await asyncio.sleep(30)


async def test_hub_forgets_a_subscriber_whose_client_left_during_the_first_load() -> None:
    hub = SlowLoadHub(asyncio.get_running_loop())
    waiting = asyncio.create_task(hub.subscribe())
    await asyncio.wait_for(hub.started.wait(), 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert hub.subscribers == set()
    assert not hub.running


def message(version: int, nodes: int, changes: str | None = None) -> dict[str, Any]:
    snapshot: Snapshot = {
        "type": "update",
        "nodes": nodes,
        "edges": 0,
        "avg_entanglement": 0.0,
        "tiers": {},
        "types": {},
        "version": version,
        "at": "",
    }
    return dict(wire.stats_message(snapshot, changes))


def frames(subscriber: Subscriber) -> list[dict[str, Any]]:
    """The events waiting in ``subscriber``, as (event, id, data) dicts."""
    waiting = subscriber.take() or b""
    events = []
    for block in waiting.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(
            {"event": fields.get("event"), "id": fields.get("id"), **json.loads(fields["data"])}
        )
    return events


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    """A running hub with one subscriber, as though its first load had been done."""
    hub = Hub(asyncio.get_running_loop())
    hub.subscribers.add(Subscriber())
    hub._tasks.append(asyncio.create_task(asyncio.sleep(3600)))  # running, nothing verifies
    try:
        yield hub
    finally:
        hub._stop()


async def test_hub_offers_newer_versions_only(hub: Hub) -> None:
    (subscriber,) = hub.subscribers
    hub.receive(message(5, nodes=1))
    hub.receive(message(4, nodes=9))  # older: what the streams have is newer
    assert [(e["event"], e["id"], e["nodes"]) for e in frames(subscriber)] == [("stats", "5", 1)]
    hub.receive(message(6, nodes=1))  # newer, the same numbers: nothing to send
    assert frames(subscriber) == []
    assert hub.latest_version == 6


async def test_hub_passes_on_the_changes_of_an_older_message(hub: Hub) -> None:
    (subscriber,) = hub.subscribers
    hub.receive(message(5, nodes=1))
    frames(subscriber)
    # The hub computed version 5 itself before this publication's message came.
    hub.receive(message(4, nodes=0, changes='{"version":4,"changes":[],"summary":{"created":1}}'))
    assert [e["event"] for e in frames(subscriber)] == ["change"]


async def test_hub_ignores_a_malformed_message(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.receive({"type": "graph.stats", "version": "x"})
    assert "malformed" in caplog.text
    assert hub.latest is None


def insert_node_with_sql() -> None:
    """A writer outside Django: no signal, no publication."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO graphapp_node (content, node_type, momentum, created_at, last_accessed,"
            " decayed_at, metadata) VALUES ('raw', 'FACT', 0.9, %s, %s, %s, '{}')",
            ["2026-12-01 10:00:00+00", "2026-12-01 10:00:00+00", "2026-12-01 10:00:00+00"],
        )


BROKEN = ("graphapp_version",)


def break_database(broken: bool = True) -> None:
    """Rename the table of the graph's version away (and back): a database that
    fails every read of graphapp's streams, and nothing else."""
    with connection.cursor() as cursor:
        for table in BROKEN:
            source, target = (table, f"{table}_away") if broken else (f"{table}_away", table)
            cursor.execute(f"ALTER TABLE {source} RENAME TO {target}")


@pytest.fixture
def version_table_restored() -> Iterator[None]:
    yield
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    if "graphapp_version_away" in tables:
        break_database(False)


_unread: dict[int, list[dict[str, Any]]] = {}


async def next_event(subscriber: Subscriber, event: str) -> dict[str, Any]:
    """The next ``event`` the subscriber receives (bounded); the events read
    with it and after it wait for the next call."""
    unread = _unread.setdefault(id(subscriber), [])
    async with asyncio.timeout(10):
        while True:
            while unread:
                found = unread.pop(0)
                if found["event"] == event:
                    return found
            await subscriber.wait(10)
            unread.extend(frames(subscriber))


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
async def test_hub_takes_a_write_no_message_announced_from_the_database() -> None:
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        first = frames(subscriber)[0]
        await in_thread(insert_node_with_sql)
        shown = await next_event(subscriber, "stats")
        assert shown["nodes"] == first["nodes"] + 1
        assert shown["version"] > first["version"]
        truth = await in_thread(snapshots.take)
        assert shown == {"event": "stats", "id": str(truth["version"]), **truth, "at": shown["at"]}
    finally:
        hub.unsubscribe(subscriber)


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
@pytest.mark.usefixtures("version_table_restored")
async def test_hub_says_stale_while_the_database_fails_and_live_once_it_answers() -> None:
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        frames(subscriber)
        await in_thread(break_database)
        stale = await next_event(subscriber, "status")
        assert stale["state"] == "stale"
        assert stale["confirmed_at"] is not None
        assert hub.status["state"] == "stale"
        # A stream that opens meanwhile is told at once.
        late = await hub.subscribe()
        assert [e["event"] for e in frames(late)] == ["stats", "history", "status"]
        hub.unsubscribe(late)
        await in_thread(break_database, False)
        live = await next_event(subscriber, "status")
        assert live["state"] == "live"
        assert live["confirmed_at"] > stale["confirmed_at"]
    finally:
        hub.unsubscribe(subscriber)


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
@pytest.mark.usefixtures("version_table_restored")
async def test_a_stream_opened_while_the_database_fails_is_told_stale_then_gets_the_truth() -> None:
    await in_thread(versions.read)  # the process has known the database whole
    await in_thread(break_database)
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        assert frames(subscriber) == [
            {"event": "status", "id": None, "state": "stale", "confirmed_at": None, "version": None}
        ]
        await in_thread(break_database, False)
        shown = await next_event(subscriber, "stats")
        assert shown["nodes"] == (await in_thread(snapshots.take))["nodes"]
        assert hub.status["state"] == "live"
    finally:
        hub.unsubscribe(subscriber)


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
async def test_hub_follows_a_database_whose_version_went_back() -> None:
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        frames(subscriber)
        hub.receive(message(10**12, nodes=12345))  # from before a restore
        assert frames(subscriber)[0]["nodes"] == 12345
        shown = await next_event(subscriber, "stats")
        assert shown["version"] < 10**12
        assert shown["nodes"] != 12345
    finally:
        hub.unsubscribe(subscriber)


class OnceBrokenHub(Hub):
    """A hub whose first look at the database fails in a way nobody expected."""

    failed = False

    async def _read_version(self, interval: float) -> tuple[bool, int | None]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in a database driver")
        return await super()._read_version(interval)


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
async def test_a_look_that_fails_unexpectedly_says_stale_and_the_looks_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = OnceBrokenHub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        frames(subscriber)
        assert (await next_event(subscriber, "status"))["state"] == "stale"
        assert (await next_event(subscriber, "status"))["state"] == "live"
    finally:
        hub.unsubscribe(subscriber)
    assert "RuntimeError: a bug in a database driver" in caplog.text


def break_statistics(broken: bool = True) -> None:
    """The version reads, the statistics fail (their node table renamed away)."""
    source, target = ("graphapp_node", "graphapp_node_away")
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {source} RENAME TO {target}"
            if broken
            else f"ALTER TABLE {target} RENAME TO {source}"
        )


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
async def test_failing_statistics_keep_the_streams_stale_without_flapping() -> None:
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        frames(subscriber)
        await in_thread(insert_node_with_sql)  # the version moves on ...
        await in_thread(break_statistics)  # ... and its snapshot cannot be computed
        try:
            assert (await next_event(subscriber, "status"))["state"] == "stale"
            await asyncio.sleep(20 * FAST["VERIFY_INTERVAL"])
            # Still stale, and said once: no live between failed refreshes.
            assert [e["event"] for e in frames(subscriber)] == []
            assert hub.stale
        finally:
            await in_thread(break_statistics, False)
        shown = await next_event(subscriber, "stats")
        assert shown["nodes"] == (await in_thread(snapshots.take))["nodes"]
        assert (await next_event(subscriber, "status"))["state"] == "live"
    finally:
        hub.unsubscribe(subscriber)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP={**FAST, "VERIFY_TIMEOUT": 0.5})
async def test_statistics_that_hang_make_the_streams_stale() -> None:
    import threading

    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    locked, release = threading.Event(), threading.Event()

    def hold_the_node_table() -> None:
        from django.db import transaction

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE graphapp_node IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    try:
        frames(subscriber)
        await in_thread(insert_node_with_sql)
        holder = asyncio.ensure_future(in_thread(hold_the_node_table))
        await asyncio.to_thread(locked.wait, 10)
        try:
            assert (await next_event(subscriber, "status"))["state"] == "stale"
        finally:
            release.set()
            await holder
        await next_event(subscriber, "stats")
        assert (await next_event(subscriber, "status"))["state"] == "live"
    finally:
        hub.unsubscribe(subscriber)


@pytest.mark.django_db(transaction=True)
@override_settings(GRAPHAPP=FAST)
async def test_without_database_versions_a_skewed_clock_cannot_outrank_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphapp import schema

    # A database that keeps no version: versions are each process's clock, and
    # one ten minutes ahead sent numbers the database no longer holds.
    monkeypatch.setattr(schema, "VENDORS", frozenset())
    hub = Hub(asyncio.get_running_loop())
    subscriber = await hub.subscribe()
    try:
        first = frames(subscriber)[0]
        hub.receive(message(first["version"] + 600_000, nodes=12345))
        assert frames(subscriber)[0]["nodes"] == 12345
        shown = await next_event(subscriber, "stats")
        assert shown["nodes"] == first["nodes"]
    finally:
        hub.unsubscribe(subscriber)
