"""Who may open and keep a stream: the checks run on the check worker, through a
detached copy of the session."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


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
