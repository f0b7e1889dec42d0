"""The stream in projects with their own authentication (tests/auth_site.py),
through daphne and uvicorn: ``request.user`` as their middleware set it, not the
session alone, checked again while the stream is open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Servers
from tests.live import VIEW_APPLICATION, LiveServer, ended_by, stream
from tests.site_setup import PASSWORD

pytestmark = pytest.mark.e2e

SETTINGS = {"REVALIDATE_INTERVAL": 1.0, "HEARTBEAT": 0.2}


def project(kind: str, auth: str) -> Callable[[pytest.TempPathFactory], Iterator[LiveServer]]:
    def start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
        servers = Servers(tmp_path_factory.mktemp(f"{auth}-{kind}"))
        env = {"DJANGO_SETTINGS_MODULE": "tests.e2e_auth_settings", "TEST_AUTH": auth}
        try:
            # The project's middleware runs on the view's path only (graphapp.asgi
            # answers before it; its AUTHENTICATOR is that path's own hook).
            started = servers.start(
                server=kind, graphapp=SETTINGS, extra_env=env, application=VIEW_APPLICATION
            )
            yield started[0]
        finally:
            servers.stop()

    return start


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def remote_user_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from project(request.param, "remote-user")(tmp_path_factory)


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def service_key_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from project(request.param, "service-key")(tmp_path_factory)


def shell(server: LiveServer, code: str) -> None:
    done = server.manage("shell", "-c", "from django.contrib.auth.models import *;" + code)
    assert done.returncode == 0, done.stderr


def new_viewer(server: LiveServer) -> str:
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    shell(
        server,
        f"u = User.objects.create_user({name!r}, '', {PASSWORD!r});"
        "u.user_permissions.add(Permission.objects.get(codename='view_node'))",
    )
    return name


def client(server: LiveServer, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10)


async def test_a_remote_user_header_opens_the_stream(remote_user_site: LiveServer) -> None:
    # No login form: the proxy's header names the user, whom the middleware logs in.
    async with (
        client(remote_user_site, **{"X-Remote-User": "viewer"}) as viewer,
        stream(viewer) as events,
    ):
        assert (await events.next_stats())["nodes"] == 0
    async with client(remote_user_site, **{"X-Remote-User": "nobody"}) as nobody:
        assert (await nobody.get("/graph/events/")).status_code == 403
    async with client(remote_user_site) as anonymous:
        assert (await anonymous.get("/graph/events/")).status_code == 403


async def test_a_remote_user_stream_ends_when_the_user_loses_the_permission(
    remote_user_site: LiveServer,
) -> None:
    name = new_viewer(remote_user_site)
    async with client(remote_user_site, **{"X-Remote-User": name}) as viewer:
        code = f"User.objects.get(username={name!r}).user_permissions.clear()"
        await ended_by(viewer, lambda: asyncio.to_thread(shell, remote_user_site, code))
        assert (await viewer.get("/graph/events/")).status_code == 403


async def test_a_service_key_opens_the_stream_without_a_session(
    service_key_site: LiveServer,
) -> None:
    async with (
        client(service_key_site, **{"X-Service-Key": "key-of-viewer"}) as service,
        stream(service) as events,
    ):
        assert (await events.next_stats())["nodes"] == 0
        assert events.response is not None
        # The middleware logs nobody in: no session cookie comes back.
        assert "sessionid" not in events.response.cookies
    for key in ("key-of-nobody", "key-of-no-such-user", "a-key-of-no-kind"):
        async with client(service_key_site, **{"X-Service-Key": key}) as other:
            assert (await other.get("/graph/events/")).status_code == 403


@pytest.mark.parametrize(
    "change",
    ["u.is_active = False; u.save()", "u.user_permissions.clear()", "u.delete()"],
    ids=["deactivated", "permission-lost", "deleted"],
)
async def test_a_service_key_stream_ends_when_its_user_may_no_longer_read(
    service_key_site: LiveServer, change: str
) -> None:
    # Nothing in a session to read again: the stream loads its user again.
    name = new_viewer(service_key_site)
    key = f"key-of-{name}"
    async with client(service_key_site, **{"X-Service-Key": key}) as service:
        code = f"u = User.objects.get(username={name!r}); {change}"
        await ended_by(service, lambda: asyncio.to_thread(shell, service_key_site, code))
        assert (await service.get("/graph/events/")).status_code == 403


@pytest.mark.services  # the shell's change reaches the server through Redis
async def test_a_change_of_access_rechecks_a_service_key_stream_by_its_user_at_once(
    make_server: Any,
) -> None:
    # The periodic check is 10 minutes away: only the recheck a change of the
    # user sends (graphapp.revoke) can end the stream, and it must check this
    # stream by its user (it has no session to read), not as a logged-out one.
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e_auth_settings", "TEST_AUTH": "service-key"}
    server = make_server(
        graphapp={"REVALIDATE_INTERVAL": 600.0}, extra_env=env, application=VIEW_APPLICATION
    )
    name = new_viewer(server)
    async with client(server, **{"X-Service-Key": f"key-of-{name}"}) as service:
        async with service.stream("GET", "/graph/events/") as kept:
            assert kept.status_code == 200
            chunks = kept.aiter_raw()
            assert b"event: stats" in await asyncio.wait_for(anext(chunks), 10.0)
            # A change that names the user but leaves them allowed: checked, kept.
            await asyncio.to_thread(
                shell,
                server,
                f"u = User.objects.get(username={name!r}); u.first_name = 'Ada'; u.save()",
            )
            await wait_for_log(server, "0 of 1 stream(s) checked again ended")
        code = f"u = User.objects.get(username={name!r}); u.is_active = False; u.save()"
        await ended_by(service, lambda: asyncio.to_thread(shell, server, code), within=5.0)
    assert "1 of 1 stream(s) checked again ended" in server.log()


async def wait_for_log(server: LiveServer, line: str) -> None:
    """Poll the server's log (bounded) until it holds ``line``."""
    for _ in range(200):
        if line in server.log():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never logged: {line}")
