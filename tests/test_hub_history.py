"""A hub's history and replay: after the first snapshot, shared, bounded, once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from graphapp import hubs, replay
from graphapp.changes import ChangeBatch, change
from graphapp.hubs import Hub
from graphapp.mailbox import Subscriber
from graphapp.models import LoggedChanges
from graphapp.wire import change_frame
from tests.test_hubs import frames, in_thread

pytestmark = pytest.mark.django_db(transaction=True)  # the hub reads on its worker thread


def create_nodes(count: int) -> list[int]:
    from graphapp.models import Node
    from graphapp.publish import publisher

    created = [Node.objects.create(content=f"n{i}", node_type="FACT").pk for i in range(count)]
    publisher.wait(10)  # published within the test, while it may use the database
    return created


def log(version: int, *items: dict[str, Any]) -> None:
    replay.record(version, ChangeBatch.of(20, items).encode(version))


async def test_the_history_follows_the_first_snapshot_and_ends_with_it() -> None:
    await in_thread(create_nodes, 2)
    hub = Hub(asyncio.get_running_loop())
    first, second = await hub.subscribe(), await hub.subscribe()
    try:
        events = frames(first)
        # (On a shared layer the creations' own change event may follow.)
        assert [e["event"] for e in events][:2] == ["stats", "history"]
        stats, shown = events[:2]
        assert shown["points"][-1]["version"] == int(stats["id"])
        assert shown["points"][-1]["nodes"] == stats["nodes"] == 2
        assert set(shown["points"][-1]) == {"version", "at", "nodes", "edges", "tiers", "types"}
        # One encoding for every stream: the same bytes, not a copy per connect.
        assert hub._history() is hub._history()
        assert [e["event"] for e in frames(second)][:2] == ["stats", "history"]
    finally:
        hub.unsubscribe(first)
        hub.unsubscribe(second)


async def test_a_stream_that_saw_a_version_gets_what_was_logged_after_it() -> None:
    ids = await in_thread(create_nodes, 3)
    await in_thread(lambda: LoggedChanges.objects.all().delete())  # the creations' own row
    hub = Hub(asyncio.get_running_loop())
    watcher = await hub.subscribe()
    latest = hub.latest_version
    await in_thread(log, latest - 1, change("created", ids[0], "FACT", "HOT"))  # already seen
    await in_thread(log, latest, change("created", ids[2], "FACT", "HOT"))
    back = await hub.subscribe(last_event_id=latest - 1)
    current = await hub.subscribe(last_event_id=latest)
    try:
        events = frames(back)
        assert [e["event"] for e in events] == ["stats", "history", "change"]
        assert [c["id"] for c in events[2]["changes"]] == [ids[2]]
        assert events[2]["version"] == latest
        # A stream that had seen the latest version missed nothing.
        assert [e["event"] for e in frames(current)] == ["stats", "history"]
    finally:
        for subscriber in (watcher, back, current):
            hub.unsubscribe(subscriber)


async def test_streams_asking_the_same_share_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    await in_thread(create_nodes, 1)
    reads: list[tuple[int, int]] = []
    real = replay.missed

    def counted(after: int, upto: int) -> str:
        reads.append((after, upto))
        return real(after, upto)

    monkeypatch.setattr(replay, "missed", counted)
    hub = Hub(asyncio.get_running_loop())
    watcher = await hub.subscribe()
    storm = await asyncio.gather(*(hub.subscribe(last_event_id=0) for _ in range(50)))
    try:
        assert reads == [(0, hub.latest_version)]
        shown = [frames(subscriber) for subscriber in storm]
        assert [e["event"] for e in shown[0]][:2] == ["stats", "history"]
        assert all(events == shown[0] for events in shown)
    finally:
        for subscriber in (watcher, *storm):
            hub.unsubscribe(subscriber)


async def test_whatever_ids_clients_send_a_hub_holds_a_bounded_number_of_replays() -> None:
    await in_thread(create_nodes, 1)
    hub = Hub(asyncio.get_running_loop())
    watcher = await hub.subscribe()
    opened = [await hub.subscribe(last_event_id=n) for n in range(hubs.MAX_REPLAYS + 40)]
    try:
        assert len(hub._replays) <= hubs.MAX_REPLAYS
    finally:
        for subscriber in (watcher, *opened):
            hub.unsubscribe(subscriber)


async def test_an_unreadable_log_is_reported_as_a_gap() -> None:
    await in_thread(create_nodes, 1)

    def drop_log() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE graphapp_loggedchanges RENAME TO graphapp_loggedchanges_x")

    def restore_log() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE graphapp_loggedchanges_x RENAME TO graphapp_loggedchanges")

    hub = Hub(asyncio.get_running_loop())
    watcher = await hub.subscribe()
    await in_thread(drop_log)
    try:
        back = await hub.subscribe(last_event_id=0)
        changes = [e for e in frames(back) if e["event"] == "change"]
        assert changes[0]["gap"] is True
        hub.unsubscribe(back)
    finally:
        await in_thread(restore_log)
        hub.unsubscribe(watcher)


def test_a_replayed_change_arriving_late_live_is_not_sent_again() -> None:
    # Another process's message, overtaken: its changes already came in the replay.
    subscriber = Subscriber()
    batch = ChangeBatch.of(20, [change("created", 1, "FACT", "HOT")])
    subscriber.offer_missed(9, change_frame(batch.encode(9)))
    subscriber.offer_changes(8, batch, change_frame(batch.encode(8)))
    later = ChangeBatch.of(20, [change("created", 2, "FACT", "HOT")])
    subscriber.offer_changes(10, later, change_frame(later.encode(10)))
    sent = (subscriber.take() or b"").decode()
    datas = [json.loads(line[6:]) for line in sent.splitlines() if line.startswith("data: ")]
    assert [[c["id"] for c in d["changes"]] for d in datas] == [[1], [2]]


async def test_a_malformed_logged_row_is_a_gap_not_a_broken_stream() -> None:
    await in_thread(create_nodes, 1)
    hub = Hub(asyncio.get_running_loop())
    watcher = await hub.subscribe()
    await in_thread(replay.record, hub.latest_version, "{not json")
    back = await hub.subscribe(last_event_id=0)
    try:
        changes = [e for e in frames(back) if e["event"] == "change"]
        # The first is the replay (a live one of the creation may follow).
        assert changes[0]["gap"] is True
    finally:
        hub.unsubscribe(back)
        hub.unsubscribe(watcher)
