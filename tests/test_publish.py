"""The save path: receivers -> on_commit -> coalescing publisher -> channel layer."""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.test import override_settings

from graphapp import ledger, snapshots
from graphapp.hubs import get_hub
from graphapp.models import Edge, Node
from graphapp.publish import RETRY_FIRST, graph_stats_published, publisher
from graphapp.stats import compute_stats

pytestmark = pytest.mark.django_db(transaction=True)

FAILING_LAYER = {"default": {"BACKEND": "tests.layers.UnreachableChannelLayer"}}


@pytest.fixture
def publish_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, "graphapp.publish")
    return caplog


def fact(content: str = "fact", momentum: float = 0.9) -> Node:
    return Node.objects.create(content=content, node_type="FACT", momentum=momentum)


def test_save_outside_a_transaction_publishes_its_state(published: list[dict[str, Any]]) -> None:
    fact()
    assert publisher.flush(10)
    assert len(published) == 1
    assert published[0]["nodes"] == 1
    assert published[0]["types"]["FACT"] == 1


def test_transaction_of_100_saves_publishes_once_with_final_state(
    published: list[dict[str, Any]],
) -> None:
    with transaction.atomic():
        nodes = [fact(f"n{i}", momentum=0.5) for i in range(100)]
        for a, b in itertools.pairwise(nodes):
            Edge.objects.create(source=a, target=b)
    assert publisher.flush(10)
    assert len(published) == 1
    assert published[0]["nodes"] == 100
    assert published[0]["edges"] == 99
    assert published[0]["tiers"]["WARM"] == 100


def test_rolled_back_transaction_publishes_nothing(published: list[dict[str, Any]]) -> None:
    def save_then_fail() -> None:
        with transaction.atomic():
            fact("never committed")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        save_then_fail()
    assert publisher.flush(10)
    assert published == []
    fact("committed")  # the next transaction must still publish
    assert publisher.flush(10)
    assert [snapshot["nodes"] for snapshot in published] == [1]


def test_save_after_a_rolled_back_savepoint_still_publishes(
    published: list[dict[str, Any]],
) -> None:
    with transaction.atomic():
        try:
            with transaction.atomic():
                fact("rolled back with its savepoint")
                raise ValueError
        except ValueError:
            pass
        fact("kept")
    assert publisher.flush(10)
    assert published, "the hook discarded with the savepoint was added again"
    assert published[-1]["nodes"] == 1


def test_delete_publishes(published: list[dict[str, Any]]) -> None:
    node = fact()
    assert publisher.flush(10)
    node.delete()
    assert publisher.flush(10)
    assert [snapshot["nodes"] for snapshot in published] == [1, 0]


@override_settings(GRAPHAPP={"COALESCE_WINDOW": 0.05})
def test_burst_is_coalesced_and_the_last_state_is_published(
    published: list[dict[str, Any]],
) -> None:
    computed_before = publisher.snapshots
    started = time.monotonic()
    for i in range(1000):
        fact(f"burst {i}", momentum=(i % 10) / 10)
    elapsed = time.monotonic() - started
    assert publisher.flush(10)
    computations = publisher.snapshots - computed_before
    # At most one computation per window (plus the leading and trailing ones).
    assert computations <= elapsed / 0.05 + 2
    assert computations < 1000
    final = compute_stats()
    last = published[-1]
    assert {key: last[key] for key in final} == final


def test_failing_channel_layer_never_fails_a_save_and_logs_once(
    published: list[dict[str, Any]], publish_log: pytest.LogCaptureFixture
) -> None:
    sent, failed = publisher.published, publisher.failures
    with override_settings(CHANNEL_LAYERS=FAILING_LAYER):
        for i in range(3):
            fact(f"saved {i}")
            # Served, and honest about it: nothing reached the layer.
            assert not publisher.flush(10)
    assert Node.objects.count() == 3
    assert (publisher.published, publisher.failures) == (sent, failed + 3)
    assert len(published) == 3  # computed, for the receivers, all the same
    errors = [r for r in publish_log.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "LayerDownError" in errors[0].getMessage()
    fact("after the outage")
    assert publisher.flush(10)


def test_missing_channel_layer_never_fails_a_save(
    published: list[dict[str, Any]], publish_log: pytest.LogCaptureFixture
) -> None:
    with override_settings(CHANNEL_LAYERS={}):
        fact()
        assert not publisher.flush(10)
    assert Node.objects.count() == 1
    assert any("LookupError" in r.getMessage() for r in publish_log.records)


def save_and_close(content: str) -> None:
    # The worker thread's connection must not outlive the test database.
    fact(content)
    connection.close()


async def test_hub_receives_what_a_save_publishes() -> None:
    hub = get_hub()
    subscriber = await hub.subscribe()
    try:
        first = await subscriber.next(5)
        assert first is not None
        await sync_to_async(save_and_close)("seen by the hub")
        frame = await subscriber.next(5)
        assert frame is not None
        # The snapshot first (its change event may follow in the same read).
        data = json.loads(frame.split(b"data: ", 1)[1].split(b"\n", 1)[0])
        before = json.loads(first.split(b"data: ", 1)[1].split(b"\n", 1)[0])
        assert data["nodes"] == before["nodes"] + 1
        # The publication goes on with its change message, on this loop: let it
        # finish before the test's loop closes.
        assert await sync_to_async(publisher.flush)(10)
    finally:
        hub.unsubscribe(subscriber)
    assert not hub.running


async def test_hub_sends_the_change_after_the_snapshot_that_shows_it() -> None:
    hub = get_hub()
    subscriber = await hub.subscribe()
    try:
        assert await subscriber.next(5) is not None
        await sync_to_async(save_and_close)("a change")
        frames = b""
        while b"event: change" not in frames:
            frame = await subscriber.next(5)
            assert frame is not None, "no change event"
            frames += frame
        assert await sync_to_async(publisher.flush)(10)
    finally:
        hub.unsubscribe(subscriber)
    stats_at, change_at = frames.index(b"event: stats"), frames.index(b"event: change")
    assert stats_at < change_at
    data = json.loads(frames[change_at:].split(b"data: ", 1)[1])
    assert data["summary"] == {}
    assert [(c["kind"], c["node_type"], c["tier"]) for c in data["changes"]] == [
        ("created", "FACT", "HOT")
    ]
    # The change event has no id of its own: it belongs to the snapshot before it.
    stats_id = int(frames[:stats_at].rsplit(b"id: ", 1)[1].split(b"\n", 1)[0])
    assert data["version"] == stats_id
    assert b"id: " not in frames[change_at:]


def test_a_failing_receiver_does_not_stop_the_publisher(
    published: list[dict[str, Any]], publish_log: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: object) -> None:
        raise ValueError("receiver bug")

    graph_stats_published.connect(broken)
    try:
        fact("first")
        assert publisher.flush(10)
    finally:
        graph_stats_published.disconnect(broken)
    fact("second")
    assert publisher.flush(10)
    assert [snapshot["nodes"] for snapshot in published] == [1, 2]
    assert any(
        "receiver" in r.getMessage() and "ValueError" in r.getMessage() for r in publish_log.records
    )


def test_a_publication_the_database_failed_is_tried_again_without_a_new_request(
    published: list[dict[str, Any]], publish_log: pytest.LogCaptureFixture
) -> None:
    # The last change of a burst whose statistics could not be computed (the
    # database restarting, a lost connection) must still reach the clients
    # once the database is back, though nothing else changes after it.
    fact("first")
    assert publisher.flush(10)
    # Tables the statistics read and a node's save does not write: the ledger,
    # and the edges they would be grouped from without it.
    tables = ["graphapp_edge", ledger.DEGREE]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        fact("second, while the statistics cannot be read")
        assert not publisher.flush(10)
    finally:
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    assert any("nothing published" in r.getMessage() for r in publish_log.records)
    assert [snapshot["nodes"] for snapshot in published] == [1]
    deadline = time.monotonic() + RETRY_FIRST + 10
    while len(published) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [snapshot["nodes"] for snapshot in published] == [1, 2]


def _snapshot_connection() -> Any:
    """The database connection wrapper of the snapshot worker, after a publication."""
    fact("published")
    assert publisher.flush(10)
    return snapshots.worker.call(lambda: connections[DEFAULT_DB_ALIAS])


def test_the_publisher_keeps_its_connection_between_publications() -> None:
    # Opening a connection per publication was half of what a commit waited for
    # before the streams got their event (SQLite; more on PostgreSQL). Closing it
    # when quiet is the worker's (tests/test_worker.py).
    first = _snapshot_connection()
    raw = first.connection
    assert raw is not None, "closed after the publication"
    assert _snapshot_connection() is first
    assert first.connection is raw, "a new connection for the second publication"


def test_a_kept_connection_that_died_is_replaced_at_once(
    published: list[dict[str, Any]], publish_log: pytest.LogCaptureFixture
) -> None:
    kept = _snapshot_connection()
    if kept.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [kept.connection.info.backend_pid])
    else:
        snapshots.worker.call(kept.connection.close)  # SQLite's nearest to a lost connection
    published.clear()
    fact("after the connection died")
    assert publisher.flush(10)
    # Published by the same request, without the retry RETRY_FIRST later.
    assert [snapshot["nodes"] for snapshot in published] == [2]
    assert not [r for r in publish_log.records if r.levelno >= logging.ERROR]
