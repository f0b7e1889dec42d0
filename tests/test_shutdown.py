"""What the drain says: the final frame, and the answer to a stream asked for meanwhile.

The signals themselves, under daphne and uvicorn, are in tests/test_limits.py and
tests/test_clients.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS, final_frame, spread_ms
from tests.test_wire import httpx_sse_events


def test_final_frame_waits_a_second_then_spreads_over_the_spread() -> None:
    retries = []
    for _ in range(200):
        [event] = httpx_sse_events(final_frame(3000))
        assert event.event == "reconnect"
        assert event.retry is not None
        assert json.loads(event.data) == {"reason": "shutdown", "retry": event.retry}
        retries.append(event.retry)
    assert min(retries) >= RECONNECT_AFTER_MS
    assert max(retries) <= RECONNECT_AFTER_MS + 3000
    # Spread, not bunched: 200 draws fall into each of four quarters of the span.
    quarters = {(retry - RECONNECT_AFTER_MS) * 4 // 3001 for retry in retries}
    assert quarters == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("streams", "rate", "spread"),
    [
        (0, 500, MIN_SPREAD_MS),
        (100, 500, MIN_SPREAD_MS),
        (5000, 500, 10_000),
        (5001, 1000, 5001),
        (3000, 1000, 3000),
    ],
)
def test_the_spread_brings_the_streams_back_at_the_reconnect_rate(
    settings: Any, streams: int, rate: int, spread: int
) -> None:
    settings.GRAPHAPP = {"RECONNECT_RATE": rate}
    assert spread_ms(streams) == spread


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("draining")
async def test_a_stream_asked_for_during_the_drain_gets_the_reconnect_event_alone() -> None:
    # A 503 would stop a standard EventSource for good (Chromium's, Node's,
    # requests-sse): the drain's own clients come back within seconds, and under
    # uvicorn the process still answers for a tenth of one after their streams end.
    from django.contrib.auth.models import Permission, User

    def viewer() -> User:
        user = User.objects.create_user("drain-viewer", password="unused")
        user.user_permissions.add(Permission.objects.get(codename="view_node"))
        return user

    client = AsyncClient()
    try:
        await client.aforce_login(await sync_to_async(viewer)())
        response = await client.get("/graph/events/")
    finally:
        await sync_to_async(connections.close_all)()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    [event] = httpx_sse_events(response.content)
    assert event.event == "reconnect"
    assert event.retry is not None
    assert RECONNECT_AFTER_MS <= event.retry <= RECONNECT_AFTER_MS + MIN_SPREAD_MS
