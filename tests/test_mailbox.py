"""One stream's mailbox: the latest snapshot, one batch of changes, the latest status."""

from __future__ import annotations

import asyncio
import json

import pytest

from graphapp.changes import ChangeBatch, change
from graphapp.mailbox import StreamClosed, Subscriber
from graphapp.wire import change_frame


async def test_subscriber_slow_reader_gets_only_the_latest_of_three_frames() -> None:
    subscriber = Subscriber()
    for frame in (b"one\n\n", b"two\n\n", b"three\n\n"):
        subscriber.offer(frame)
    assert await subscriber.next(1.0) == b"three\n\n"
    # Nothing queued behind it: the older snapshots are gone, not waiting.
    assert await subscriber.next(0.01) is None


async def test_subscriber_next_returns_none_after_the_heartbeat_when_nothing_comes() -> None:
    subscriber = Subscriber()
    assert await subscriber.next(0.01) is None
    assert await subscriber.next(0.01) is None


async def test_subscriber_next_returns_a_waiting_frame_even_with_zero_heartbeat() -> None:
    subscriber = Subscriber()
    subscriber.offer(b"ready\n\n")
    assert await subscriber.next(0.0) == b"ready\n\n"


async def test_subscriber_next_wakes_when_a_frame_is_offered_while_waiting() -> None:
    subscriber = Subscriber()
    waiting = asyncio.create_task(subscriber.next(10.0))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    subscriber.offer(b"late\n\n")
    assert await asyncio.wait_for(waiting, 1.0) == b"late\n\n"


async def test_subscriber_wakes_for_an_offer_after_a_heartbeat_passed_and_a_cancel() -> None:
    subscriber = Subscriber()
    assert await subscriber.next(0.01) is None  # the heartbeat passed: nothing came
    cancelled = asyncio.create_task(subscriber.next(10.0))
    await asyncio.sleep(0)
    cancelled.cancel()  # the client left while its stream waited
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    waiting = asyncio.create_task(subscriber.next(10.0))
    await asyncio.sleep(0)
    subscriber.offer(b"after\n\n")
    assert await asyncio.wait_for(waiting, 1.0) == b"after\n\n"


async def test_subscriber_offer_after_read_is_delivered_once() -> None:
    subscriber = Subscriber()
    subscriber.offer(b"one\n\n")
    assert await subscriber.next(1.0) == b"one\n\n"
    subscriber.offer(b"two\n\n")
    assert await subscriber.next(1.0) == b"two\n\n"
    assert await subscriber.next(0.01) is None


async def test_subscriber_close_makes_next_raise_stream_closed() -> None:
    subscriber = Subscriber()
    subscriber.close()
    with pytest.raises(StreamClosed):
        await subscriber.next(1.0)


async def test_subscriber_close_wins_over_a_pending_frame() -> None:
    subscriber = Subscriber()
    subscriber.offer(b"pending\n\n")
    subscriber.close()
    with pytest.raises(StreamClosed):
        await subscriber.next(1.0)


async def test_subscriber_close_wakes_a_waiting_reader() -> None:
    subscriber = Subscriber()
    waiting = asyncio.create_task(subscriber.next(10.0))
    await asyncio.sleep(0)
    subscriber.close()
    with pytest.raises(StreamClosed):
        await asyncio.wait_for(waiting, 1.0)


async def test_subscriber_stays_closed_on_every_later_next() -> None:
    subscriber = Subscriber()
    subscriber.close()
    with pytest.raises(StreamClosed):
        await subscriber.next(0.01)
    # A closed mailbox must not turn back into an idle one that sends heartbeats.
    with pytest.raises(StreamClosed):
        await subscriber.next(0.01)


def offer_changes(subscriber: Subscriber, version: int, batch: ChangeBatch) -> bytes:
    frame = change_frame(batch.encode(version))
    subscriber.offer_changes(version, batch, frame)
    return frame


def change_data(frame: bytes) -> dict[str, object]:
    """The data of the change event in ``frame`` (which may hold a stats event first)."""
    event = frame.split(b"event: change\n", 1)[1]
    data: dict[str, object] = json.loads(event.split(b"data: ", 1)[1])
    return data


async def test_subscriber_sends_the_snapshot_then_the_changes_framed_by_the_hub() -> None:
    subscriber = Subscriber()
    subscriber.offer(b"id: 1\nevent: stats\ndata: {}\n\n")
    shared = offer_changes(subscriber, 2, ChangeBatch.of(20, [change("created", 5, "FACT", "HOT")]))
    frame = await subscriber.next(1.0)
    # The hub's bytes as they are: nothing framed again for a reader that keeps up.
    assert frame == b"id: 1\nevent: stats\ndata: {}\n\n" + shared
    assert await subscriber.next(0.01) is None


async def test_subscriber_slow_reader_gets_pending_changes_merged_into_one_event() -> None:
    subscriber = Subscriber()
    offer_changes(subscriber, 1, ChangeBatch.of(20, [change("created", 1, "FACT", "HOT")]))
    offer_changes(subscriber, 2, ChangeBatch.of(20, [change("deleted", 1, "FACT", "HOT")]))
    frame = await subscriber.next(1.0)
    assert frame is not None
    assert frame.count(b"event: change") == 1
    assert change_data(frame) == {
        "version": 2,
        "changes": [change("created", 1, "FACT", "HOT"), change("deleted", 1, "FACT", "HOT")],
        "summary": {},
    }


async def test_subscriber_slow_reader_holds_a_bounded_summary_of_a_long_burst() -> None:
    subscriber = Subscriber()
    for version in range(1, 2001):
        batch = ChangeBatch.of(20, [change("created", version, "CODE", "WARM")])
        offer_changes(subscriber, version, batch)
    frame = await subscriber.next(1.0)
    assert frame is not None
    assert len(frame) < 200
    assert change_data(frame) == {"version": 2000, "changes": [], "summary": {"created": 2000}}




async def test_subscriber_sends_snapshot_changes_then_the_latest_status() -> None:
    subscriber = Subscriber()
    subscriber.offer_status(b"event: status\ndata: stale\n\n")
    subscriber.offer(b"event: stats\ndata: {}\n\n")
    offer_changes(subscriber, 2, ChangeBatch.of(20, [change("created", 5, "FACT", "HOT")]))
    subscriber.offer_status(b"event: status\ndata: live\n\n")
    frame = await subscriber.next(1.0)
    assert frame is not None
    # The status speaks of the snapshot before it; only the latest one counts.
    assert frame.index(b"event: stats") < frame.index(b"event: change") < frame.index(b"live")
    assert b"stale" not in frame
    assert await subscriber.next(0.01) is None
