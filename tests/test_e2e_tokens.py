"""Stream tokens end to end: issued to a logged-in session by the JSON API, opening
the stream without cookies, through daphne and uvicorn; refused once expired,
tampered with, or revoked by a logout, a password change or a lost permission."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Servers
from tests.live import (
    APPLICATION,
    VIEW_APPLICATION,
    LiveServer,
    csrf_headers,
    ended_by,
    logged_in,
    login,
    logout,
    stream,
)
from tests.site_setup import PASSWORD

pytestmark = pytest.mark.e2e

# Streams of these servers are checked every second: a revocation that waits
# for the periodic check shows within a few.
SETTINGS = {"REVALIDATE_INTERVAL": 1.0, "HEARTBEAT": 0.2}


@pytest.fixture(
    scope="module",
    params=[
        ("daphne", APPLICATION),
        ("daphne", VIEW_APPLICATION),
        ("uvicorn", APPLICATION),
        ("uvicorn", VIEW_APPLICATION),
    ],
    ids=["daphne-asgi", "daphne-view", "uvicorn-asgi", "uvicorn-view"],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Each server, on each path of the stream (graphapp.asgi, the Django view)."""
    kind, application = request.param
    servers = Servers(tmp_path_factory.mktemp(f"tokens-{kind}"))
    try:
        yield servers.start(server=kind, graphapp=SETTINGS, application=application)[0]
    finally:
        servers.stop()


def new_viewer(server: LiveServer) -> str:
    """A user of its own with the view permission (tests change users)."""
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    code = (
        "from django.contrib.auth.models import Permission, User;"
        f"u = User.objects.create_user({name!r}, '', {PASSWORD!r});"
        "u.user_permissions.add(Permission.objects.get(codename='view_node'))"
    )
    done = server.manage("shell", "-c", code)
    assert done.returncode == 0, done.stderr
    return name


def change_user(server: LiveServer, name: str, change: str) -> None:
    code = (
        "from django.contrib.auth.models import Permission, User;"
        f"u = User.objects.get(username={name!r});{change}"
    )
    done = server.manage("shell", "-c", code)
    assert done.returncode == 0, done.stderr


async def issue(client: httpx.AsyncClient, server: LiveServer) -> httpx.Response:
    return await client.post("/graph/api/token/", headers=csrf_headers(client, server))


async def token_of(client: httpx.AsyncClient, server: LiveServer) -> str:
    answer = await issue(client, server)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


@contextlib.asynccontextmanager
async def cookieless(server: LiveServer, token: str = "") -> AsyncIterator[httpx.AsyncClient]:
    """A client with no cookies at all (a CLI, a service), sending ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
        yield client


async def test_a_token_opens_the_stream_for_a_client_without_cookies(server: LiveServer) -> None:
    async with logged_in(server, new_viewer(server)) as viewer:
        answer = await issue(viewer, server)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["expires_in"] == 120.0
        token = answer.json()["token"]
        truth = (await viewer.get("/graph/api/stats/")).json()
    async with cookieless(server, token) as client, stream(client) as events:
        first = await events.next_stats()
        assert first["nodes"] == truth["nodes"]
        assert not client.cookies
    # The token is a credential: graphapp never writes it (the server logs at DEBUG).
    assert token not in server.log()


async def test_a_tampered_or_malformed_token_is_refused_with_401(server: LiveServer) -> None:
    async with logged_in(server, new_viewer(server)) as viewer:
        token = await token_of(viewer, server)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, "not-a-token", token.replace(":", ".", 1)):
        async with cookieless(server, bad) as client:
            answer = await client.get("/graph/events/")
        assert answer.status_code == 401, bad
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert answer.json() == {"error": "The token is not valid."}


async def test_a_token_in_the_query_string_is_refused_unless_allowed(server: LiveServer) -> None:
    async with logged_in(server, new_viewer(server)) as viewer:
        token = await token_of(viewer, server)
    async with cookieless(server) as client:
        answer = await client.get("/graph/events/", params={"token": token})
    assert answer.status_code == 401
    assert "TOKEN_IN_QUERY" in answer.json()["error"]


REVOCATIONS = {
    # The session flushed: the token's session is gone.
    "logout": ("", 401),
    # The session's auth hash no longer matches: the session, and its token, end.
    "password-changed": ("u.set_password('another-horse-battery'); u.save()", 401),
    # The token still carries its session, whose user may no longer read.
    "permission-lost": ("u.user_permissions.clear()", 403),
}


@pytest.mark.parametrize("revocation", list(REVOCATIONS))
async def test_a_revocation_ends_the_token_streams_and_refuses_the_token(
    server: LiveServer, revocation: str
) -> None:
    change, status = REVOCATIONS[revocation]
    name = new_viewer(server)
    async with logged_in(server, name) as viewer:
        token = await token_of(viewer, server)
        async with cookieless(server, token) as client:
            if change:
                await ended_by(client, lambda: asyncio.to_thread(change_user, server, name, change))
            else:
                await ended_by(client, lambda: logout(viewer, server))
            again = await client.get("/graph/events/")
    assert again.status_code == status
    if status == 401:
        assert again.json() == {"error": "The token was revoked: its session has ended."}


async def test_a_token_is_issued_only_to_a_session_that_may_read_the_stream(
    server: LiveServer,
) -> None:
    async with logged_in(server, "nobody") as nobody:
        assert (await issue(nobody, server)).status_code == 403
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        (await anonymous.get("/accounts/login/")).raise_for_status()
        answer = await issue(anonymous, server)
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/json"
        # Issued by POST alone (a GET could be made by any page's <img>).
        assert (await anonymous.get("/graph/api/token/")).status_code == 405
    viewer = await login(server, new_viewer(server))
    try:
        without_csrf = await viewer.post("/graph/api/token/")
        assert without_csrf.status_code == 403
        assert "CSRF" in without_csrf.json()["error"]
    finally:
        await viewer.aclose()


async def test_a_token_expires_after_token_max_age(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(
        server="uvicorn", graphapp={"TOKEN_MAX_AGE": 1.0}, application=stream_application
    )
    async with logged_in(server, "viewer") as viewer:
        token = await token_of(viewer, server)
    # Timestamps are whole seconds: past 2 s, it is more than 1 s old whatever
    # second it was issued in.
    await asyncio.sleep(2.2)
    async with cookieless(server, token) as client:
        answer = await client.get("/graph/events/")
    assert answer.status_code == 401
    assert answer.json() == {"error": "The token has expired; ask for a new one."}


async def test_a_token_in_the_query_string_opens_the_stream_where_allowed(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(graphapp={"TOKEN_IN_QUERY": True}, application=stream_application)
    async with logged_in(server, "viewer") as viewer:
        token = await token_of(viewer, server)
    async with cookieless(server) as client:
        client.params = httpx.QueryParams({"token": token})
        async with stream(client) as events:
            assert (await events.next_stats())["nodes"] == 0
