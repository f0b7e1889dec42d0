"""SSE framing and the per-stream mailbox, in process, without a server."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.db import DatabaseError

from graphapp.changes import ChangeBatch, change
from graphapp.streaming import (
    HEARTBEAT_FRAME,
    Hub,
    StreamClosed,
    Subscriber,
    change_frame,
    event_stream,
    get_hub,
    sse_frame,
    stats_frame,
)


def test_sse_frame_writes_retry_id_event_then_data() -> None:
    frame = sse_frame('{"nodes":3}', event="stats", id=42, retry=1500)
    assert frame == b'retry: 1500\nid: 42\nevent: stats\ndata: {"nodes":3}\n\n'


def test_sse_frame_splits_multiline_data_into_one_data_line_each() -> None:
    assert sse_frame("first\nsecond\n\nfourth") == (
        b"data: first\ndata: second\ndata: \ndata: fourth\n\n"
    )


def test_sse_frame_splits_data_on_carriage_returns_too() -> None:
    # SSE ends a line at CR, LF or CRLF: a CR left inside a data line would end
    # it early and the rest would be read as an unknown field and dropped.
    assert sse_frame("one\rtwo\r\nthree") == b"data: one\ndata: two\ndata: three\n\n"


def test_sse_frame_with_only_retry_is_a_retry_hint() -> None:
    assert sse_frame(retry=3000) == b"retry: 3000\n\n"


def test_sse_frame_ends_with_one_blank_line_and_contains_no_other() -> None:
    for frame in (
        sse_frame("x"),
        sse_frame("a\nb", event="stats", id="7"),
        sse_frame(retry=0),
        HEARTBEAT_FRAME,
    ):
        assert frame.endswith(b"\n\n"), frame
        assert b"\n\n" not in frame[:-2], frame


def test_sse_frame_encodes_non_ascii_data_as_utf8() -> None:
    assert sse_frame("caf\u00e9 \U0001f525") == "data: caf\u00e9 \U0001f525\n\n".encode()


def test_stats_frame_carries_the_version_as_id_and_the_stats_event() -> None:
    assert stats_frame(1717171717171, '{"nodes":1,"edges":0}') == (
        b'id: 1717171717171\nevent: stats\ndata: {"nodes":1,"edges":0}\n\n'
    )


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


class SlowLoadHub(Hub):
    """A hub whose first snapshot takes long (a slow database), or fails."""

    def __init__(self, loop: asyncio.AbstractEventLoop, error: Exception | None = None) -> None:
        super().__init__(loop)
        self.started = asyncio.Event()
        self.error = error

    async def _load(self) -> None:
        self.started.set()
        if self.error is not None:
            raise self.error
        await asyncio.sleep(30)


async def test_hub_forgets_a_subscriber_whose_client_left_during_the_first_load() -> None:
    hub = SlowLoadHub(asyncio.get_running_loop())
    waiting = asyncio.create_task(hub.subscribe())
    await asyncio.wait_for(hub.started.wait(), 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert hub.subscribers == set()
    assert not hub.subscribed


async def test_hub_forgets_a_subscriber_whose_first_load_failed() -> None:
    hub = SlowLoadHub(asyncio.get_running_loop(), error=DatabaseError("database down"))
    with pytest.raises(DatabaseError):
        await hub.subscribe()
    assert hub.subscribers == set()
    assert not hub.subscribed


def test_change_frame_carries_the_version_as_id_and_the_change_event() -> None:
    assert change_frame(7, '{"changes":[]}') == b'id: 7\nevent: change\ndata: {"changes":[]}\n\n'


def offer_changes(subscriber: Subscriber, version: int, batch: ChangeBatch) -> bytes:
    frame = change_frame(version, batch.encode(version))
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
    assert frame.startswith(b"id: 2\n")
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


@pytest.mark.django_db(transaction=True)
async def test_paced_stream_keeps_a_change_event_when_a_snapshot_follows_it_in_the_pause() -> None:
    hub = get_hub()
    stream = event_stream(1000, 5.0, min_interval=0.5)
    try:
        first = await anext(stream)
        assert b"event: stats" in first
        version = hub.latest_version
        # A publication with its changes, just after the first snapshot was sent:
        # the stream holds it back until min_interval has passed since then...
        hub._accept(version + 1, '{"nodes":1}', "state-1")
        batch = ChangeBatch.of(20, [change("created", 5, "FACT", "HOT")])
        hub._accept_changes(version + 2, batch.encode(version + 2))
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert not reading.done()
        # ... and meanwhile the next publication (statistics only) arrives.
        hub._accept(version + 3, '{"nodes":2}', "state-2")
        frame = await asyncio.wait_for(reading, 5)
    finally:
        await stream.aclose()
    assert b'data: {"nodes":2}' in frame
    assert b"event: change" in frame, frame
    assert not hub.subscribed
