"""The one thread that runs the streams' permission checks, and its connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import AsyncClient

from graphapp.models import Node
from graphapp.views import check_thread

pytestmark = pytest.mark.django_db(transaction=True)


def _connection_in_check_thread() -> Any:
    return check_thread._executor.submit(lambda: connections[DEFAULT_DB_ALIAS].connection).result()


async def test_many_checks_keep_one_connection_closed_once_when_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_thread, "IDLE_CLOSE", 0.3)
    closes = 0
    close_if_idle = check_thread._close_if_idle

    def counted() -> None:
        nonlocal closes
        closes += 1
        close_if_idle()

    monkeypatch.setattr(check_thread, "_close_if_idle", counted)

    async def check() -> int:
        async with check_thread.context():
            return await sync_to_async(Node.objects.count)()

    assert await asyncio.gather(*(check() for _ in range(50))) == [0] * 50
    kept = _connection_in_check_thread()
    assert kept is not None, "the check thread closed its connection right after the checks"
    await check()  # a check in the quiet period moves the closing on
    assert _connection_in_check_thread() is kept

    for _ in range(200):
        await asyncio.sleep(0.02)
        if _connection_in_check_thread() is None:
            break
    assert _connection_in_check_thread() is None, "still open after IDLE_CLOSE quiet seconds"
    # One timer for all 51 checks: the thread got one closing task, not 51.
    await asyncio.sleep(0.5)
    assert closes == 1


@pytest.fixture
async def client() -> Any:
    """A test client; afterwards, the connection its login opened in asgiref's
    sync thread is closed (PostgreSQL drops no database somebody is connected to)."""
    yield AsyncClient()
    await sync_to_async(connections.close_all)()


def _viewer() -> Any:
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("stream-viewer", password="unused")
    user.user_permissions.add(Permission.objects.get(codename="view_node"))
    return user


async def test_a_stream_is_checked_without_loading_the_session_into_its_own_request(
    client: AsyncClient,
) -> None:
    # The stream's request lives as long as the stream: the session data and
    # the user read for the check must not stay in it (bench/: memory per stream).
    await client.aforce_login(await sync_to_async(_viewer)())

    response = await client.get("/graph/events/")
    try:
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/event-stream")
        request = response.asgi_request
        assert request.session.session_key == client.session.session_key
        assert not request.session.accessed
    finally:
        response.close()

    refused = await AsyncClient().get("/graph/events/")  # and the check still checks
    assert refused.status_code == 403


async def test_a_stream_whose_session_only_an_old_secret_key_verifies_keeps_it_rotated(
    client: AsyncClient, settings: Any
) -> None:
    # After a deploy that rotates SECRET_KEY (the old one in SECRET_KEY_FALLBACKS),
    # every open page reconnects its stream first. Django then rotates the
    # session's key: the stream's response must carry the new cookie, or the
    # user is logged out of the whole site.
    settings.SECRET_KEY = "graphapp-test-old-secret-key-" + "x" * 40
    await client.aforce_login(await sync_to_async(_viewer)())
    old_key = client.cookies["sessionid"].value
    settings.SECRET_KEY = "graphapp-test-new-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = ["graphapp-test-old-secret-key-" + "x" * 40]

    response = await client.get("/graph/events/")
    response.close()
    assert response.status_code == 200
    assert "Cookie" in response["Vary"]
    new_key = response.cookies["sessionid"].value
    assert new_key != old_key

    again = await client.get("/graph/events/")  # the new cookie still logs the user in
    again.close()
    assert again.status_code == 200
    assert "sessionid" not in again.cookies  # nothing more to rotate
