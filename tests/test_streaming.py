"""The stream generator, in process, without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from django.db import OperationalError
from httpx_sse import EventSource

from graphapp.changes import ChangeBatch, change
from graphapp.hubs import get_hub
from graphapp.streaming import event_stream
from graphapp.wire import HEARTBEAT_FRAME


def message(version: int, data: str, state: str, changes: str | None = None) -> dict[str, Any]:
    sent: dict[str, Any] = {"type": "graph.stats", "version": version, "data": data, "state": state}
    if changes is not None:
        sent["changes"] = {"version": version, "data": changes}
    return sent


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
        batch = ChangeBatch.of(20, [change("created", 5, "FACT", "HOT")])
        hub.receive(message(version + 1, '{"nodes":1}', "state-1", batch.encode(version + 1)))
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert not reading.done()
        # ... and meanwhile the next publication (statistics only) arrives.
        hub.receive(message(version + 2, '{"nodes":2}', "state-2"))
        frame = await asyncio.wait_for(reading, 5)
    finally:
        await stream.aclose()
    assert b'data: {"nodes":2}' in frame
    assert b"event: change" in frame, frame
    assert not hub.running


@pytest.mark.django_db(transaction=True)
async def test_first_event_is_the_snapshot_and_carries_the_retry() -> None:
    stream = event_stream(1234, 5.0)
    try:
        first = await anext(stream)
    finally:
        await stream.aclose()
    # Read as httpx-sse reads it: a retry of its own made an empty message first.
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=first)
    event = next(EventSource(response).iter_sse())
    assert (event.event, event.retry) == ("stats", 1234)
    assert json.loads(event.data)["type"] == "update"


@pytest.mark.django_db(transaction=True)
async def test_a_revalidation_without_an_answer_keeps_the_stream_and_asks_again() -> None:
    # The database down, then slow (longer than a heartbeat), then the user gone.
    answers: list[str] = ["down", "slow", "no"]
    asked = 0

    async def still_allowed() -> bool:
        nonlocal asked
        asked += 1
        answer = answers.pop(0)
        if answer == "down":
            raise OperationalError("couldn't get a connection after 3.00 sec")
        if answer == "slow":
            await asyncio.sleep(10)
        return False

    stream = event_stream(1000, 0.1, still_allowed=still_allowed, revalidate_every=0.1)
    frames = []
    try:
        frames.append(await anext(stream))
        async with asyncio.timeout(5):
            frames.extend([frame async for frame in stream])
    finally:
        await stream.aclose()
    assert asked == 3, "asked again a heartbeat after each time it got no answer"
    assert frames.count(HEARTBEAT_FRAME) >= 2, frames
    assert not get_hub().running, "the no ended it"
