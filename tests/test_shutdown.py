"""What the drain says: the final frame, and the answer to a stream asked for meanwhile.

The signals themselves, under daphne and uvicorn, are in tests/test_limits.py and
tests/test_clients.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from graphapp.limits import stream_limits
from graphapp.shutdown import final_frame
from tests.test_wire import httpx_sse_events


@pytest.fixture
def draining() -> Iterator[None]:
    stream_limits.draining = True
    try:
        yield
    finally:
        stream_limits.draining = False


def test_final_frame_is_a_reconnect_event_within_the_retry_and_a_second(settings: Any) -> None:
    settings.GRAPHAPP = {"RETRY": 200}
    for _ in range(50):
        [event] = httpx_sse_events(final_frame())
        assert event.event == "reconnect"
        assert event.retry is not None
        assert 0 <= event.retry <= 200
        assert json.loads(event.data) == {"reason": "shutdown", "retry": event.retry}
    settings.GRAPHAPP = {"RETRY": 600_000}
    assert all((httpx_sse_events(final_frame())[0].retry or 0) <= 1000 for _ in range(50))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("draining")
async def test_a_stream_asked_for_during_the_drain_gets_the_reconnect_event_alone() -> None:
    # A 503 would stop a standard EventSource for good (Chromium's, Node's,
    # requests-sse): the drain's own clients come back within a second, and under
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
    assert 0 <= event.retry <= 1000
