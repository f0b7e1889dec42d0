"""The stream in front of Django (graphapp.asgi), in-process through its ASGI interface.

What both paths do alike is tested through real servers, on both, in
tests/test_e2e_stream.py, test_limits.py and test_e2e_history.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import AsyncClient

from graphapp.asgi import EventsRouter, events, session_user
from graphapp.hubs import current_hub
from graphapp.limits import stream_limits
from graphapp.revoke import session_digest
from graphapp.shutdown import MIN_SPREAD_MS, RECONNECT_AFTER_MS
from graphapp.types import Scope, User
from tests.test_wire import httpx_sse_events

pytestmark = pytest.mark.django_db(transaction=True)


def _viewer(name: str = "asgi-viewer") -> Any:
    from django.contrib.auth.models import Permission
    from django.contrib.auth.models import User as UserModel

    user = UserModel.objects.create_user(name, password="unused")
    user.user_permissions.add(Permission.objects.get(codename="view_node"))
    return user


def user_named_in_a_header(scope: Scope) -> User:
    """An AUTHENTICATOR as a project with its own scheme writes one (tests only:
    a header anyone can send is no authentication)."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as UserModel

    for name, value in scope["headers"]:
        if name == b"x-test-user":
            return UserModel.objects.get(username=value.decode())
    return AnonymousUser()


def user_of_the_session_a_header_names(scope: Scope) -> User:
    """An AUTHENTICATOR that vouches with another session than the cookie's,
    as one for tokens does (tests only)."""
    from django.contrib.sessions.backends.db import SessionStore

    for name, value in scope["headers"]:
        if name == b"x-test-session":
            scope["session"] = SessionStore(value.decode())
    return session_user(scope)


@pytest.fixture
async def session_cookie() -> AsyncIterator[str]:
    """The session cookie of a logged-in viewer."""
    client = AsyncClient()
    await client.aforce_login(await sync_to_async(_viewer)())
    yield f"sessionid={client.cookies['sessionid'].value}"
    await sync_to_async(connections.close_all)()


def request(path: str = "/graph/events/", *headers: tuple[bytes, bytes], **scope: Any) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        **scope,
    }


async def opened(app: Any, scope: Scope) -> tuple[ApplicationCommunicator, dict[str, Any]]:
    """Send the request; the communicator and the response's start."""
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start: dict[str, Any] = await communicator.receive_output(10)
    return communicator, start


def headers_of(start: dict[str, Any]) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in start["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


async def test_a_stream_starts_with_the_snapshot_and_gives_its_slot_back_on_disconnect(
    session_cookie: str,
) -> None:
    communicator, start = await opened(
        events, request("/graph/events/", (b"cookie", session_cookie.encode()))
    )
    assert start["status"] == 200
    headers = headers_of(start)
    assert headers[b"content-type"] == [b"text/event-stream; charset=utf-8"]
    assert headers[b"vary"] == [b"Cookie"]
    first = await communicator.receive_output(10)
    assert b"event: stats\n" in first["body"]
    assert first["more_body"] is True
    assert stream_limits.total == 1

    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    assert stream_limits.total == 0


@pytest.mark.usefixtures("draining")
async def test_a_stream_asked_for_during_the_drain_gets_the_reconnect_event_alone(
    session_cookie: str,
) -> None:
    communicator, start = await opened(
        events, request("/graph/events/", (b"cookie", session_cookie.encode()))
    )
    body = await communicator.receive_output(10)
    await communicator.wait(10)
    assert start["status"] == 200
    assert headers_of(start)[b"content-type"][0].startswith(b"text/event-stream")
    [event] = httpx_sse_events(body["body"])
    assert event.event == "reconnect"
    assert event.retry is not None
    assert RECONNECT_AFTER_MS <= event.retry <= RECONNECT_AFTER_MS + MIN_SPREAD_MS
    assert stream_limits.total == 0


async def test_a_session_only_an_old_secret_key_verifies_is_rotated_and_its_cookie_sent(
    settings: Any,
) -> None:
    # As the view does (tests/test_access.py): without the new cookie the user
    # would be logged out of the whole site after a SECRET_KEY rotation.
    old = "graphapp-test-old-secret-key-" + "x" * 40
    settings.SECRET_KEY = old
    client = AsyncClient()
    await client.aforce_login(await sync_to_async(_viewer)())
    old_key = client.cookies["sessionid"].value
    settings.SECRET_KEY = "graphapp-test-new-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    try:
        cookie = (b"cookie", f"sessionid={old_key}".encode())
        communicator, start = await opened(events, request("/graph/events/", cookie))
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(10)
        assert start["status"] == 200
        [set_cookie] = headers_of(start)[b"set-cookie"]
        new_key = set_cookie.split(b";")[0].split(b"=", 1)[1].decode()
        assert new_key != old_key

        again = (b"cookie", f"sessionid={new_key}".encode())
        communicator, start = await opened(events, request("/graph/events/", again))
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(10)
        assert start["status"] == 200
        assert b"set-cookie" not in headers_of(start)  # nothing more to rotate
    finally:
        await sync_to_async(connections.close_all)()


async def test_the_authenticator_is_the_projects_own(settings: Any) -> None:
    await sync_to_async(_viewer)("by-header")
    settings.GRAPHAPP = {"AUTHENTICATOR": "tests.test_asgi.user_named_in_a_header"}
    try:
        named = request("/graph/events/", (b"x-test-user", b"by-header"))
        communicator, start = await opened(events, named)
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(10)
        assert start["status"] == 200

        communicator, refused = await opened(events, request("/graph/events/"))
        await communicator.receive_output(10)
        await communicator.wait(10)
        assert refused["status"] == 403
    finally:
        await sync_to_async(connections.close_all)()


async def test_the_router_takes_the_streams_path_alone(session_cookie: str) -> None:
    router = EventsRouter(get_asgi_application())
    assert router.path == "/graph/events/"  # where graphsite includes graphapp.urls
    cookie = (b"cookie", session_cookie.encode())
    # Django's answers carry its middleware's headers; the stream's own do not.
    communicator, api = await opened(router, request("/graph/api/stats/", cookie))
    await communicator.receive_output(10)
    assert api["status"] == 200
    assert b"x-frame-options" in headers_of(api)

    mounted = request("/site/graph/events/", cookie, root_path="/site")
    communicator, stream = await opened(router, mounted)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    assert stream["status"] == 200
    assert b"x-frame-options" not in headers_of(stream)

    communicator, posted = await opened(router, request("/graph/events/", method="POST"))
    await communicator.receive_output(10)
    assert posted["status"] == 405
    assert headers_of(posted)[b"allow"] == [b"GET"]


def test_a_router_without_the_streams_url_says_how_to_give_it(settings: Any) -> None:
    settings.ROOT_URLCONF = "django.contrib.auth.urls"  # URLs, none of them graphapp's
    with pytest.raises(ImproperlyConfigured, match=r"include graphapp\.urls"):
        _ = EventsRouter(get_asgi_application()).path
    assert EventsRouter(get_asgi_application(), path="/live/").path == "/live/"


async def test_channels_url_router_routes_the_stream_as_the_readme_shows(
    session_cookie: str,
) -> None:
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path, re_path

    django_application = get_asgi_application()
    application = ProtocolTypeRouter(
        {"http": URLRouter([path("graph/events/", events), re_path(r"", django_application)])}
    )
    cookie = (b"cookie", session_cookie.encode())
    communicator, stream = await opened(application, request("/graph/events/", cookie))
    first = await communicator.receive_output(10)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    assert stream["status"] == 200
    assert b"x-frame-options" not in headers_of(stream)  # not through Django's middleware
    assert b"event: stats\n" in first["body"]

    communicator, api = await opened(application, request("/graph/api/stats/", cookie))
    await communicator.receive_output(10)
    assert api["status"] == 200
    assert b"x-frame-options" in headers_of(api)


async def test_the_session_an_authenticator_vouches_with_is_the_streams(
    session_cookie: str, settings: Any
) -> None:
    # Revocation at logout and revalidation follow it, not the cookie's.
    settings.GRAPHAPP = {"AUTHENTICATOR": "tests.test_asgi.user_of_the_session_a_header_names"}
    key = session_cookie.split("=", 1)[1]
    try:
        named = request("/graph/events/", (b"x-test-session", key.encode()))
        communicator, start = await opened(events, named)
        await communicator.receive_output(10)  # the first snapshot: subscribed
        hub = current_hub()
        assert hub is not None
        [subscriber] = hub.subscribers
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(10)
        assert start["status"] == 200
        assert b"set-cookie" not in headers_of(start)
        assert subscriber.session_key == key
        assert subscriber.session == session_digest(key)
    finally:
        await sync_to_async(connections.close_all)()
