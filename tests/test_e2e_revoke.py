"""A change of access ends the streams it affects at once, in every process (graphapp.revoke).

Every server here checks its streams periodically only every 300 s: a stream
that ends within seconds was ended by the change itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import Servers
from tests.live import LiveServer, csrf_headers, logged_in
from tests.site_setup import PASSWORD

pytestmark = pytest.mark.e2e

LONG = {"REVALIDATE_INTERVAL": 300, "HEARTBEAT": 0.2}
ENDS_WITHIN = 5.0

# A group that grants the view permission, and a user who reads through it alone.
SETUP = f"""
import json
from django.contrib.auth.models import Group, Permission, User
readers = Group.objects.create(name="readers")
readers.permissions.add(Permission.objects.get(codename="view_node"))
User.objects.create_user("member", "", {PASSWORD!r}).groups.add(readers)
print(json.dumps({{
    "group": readers.pk,
    **{{u.username: u.pk for u in User.objects.all()}},
}}))
"""

_ON = "from django.contrib.auth.models import Group, Permission, User\n"
# Who loses the stream, and the change made in a shell (another process).
CAUSES: dict[str, tuple[str, str]] = {
    "password changed": (
        "viewer",
        _ON + 'u = User.objects.get(username="viewer")\n'
        'u.set_password("another-horse-battery-staple")\nu.save()\n',
    ),
    "user deactivated": (
        "viewer",
        _ON + 'u = User.objects.get(username="viewer")\nu.is_active = False\nu.save()\n',
    ),
    "permission removed": (
        "viewer",
        _ON + 'User.objects.get(username="viewer").user_permissions.remove(\n'
        '    Permission.objects.get(codename="view_node"))\n',
    ),
    "group removed from the user": (
        "member",
        _ON + 'User.objects.get(username="member").groups.remove(\n'
        '    Group.objects.get(name="readers"))\n',
    ),
    "permission removed from the group": (
        "member",
        _ON + 'Group.objects.get(name="readers").permissions.remove(\n'
        '    Permission.objects.get(codename="view_node"))\n',
    ),
    "session deleted": (
        "viewer",
        "from django.contrib.sessions.models import Session\n"
        "Session.objects.filter(session_key={session!r}).delete()\n",
    ),
}


def set_up(server: LiveServer) -> dict[str, int]:
    done = server.manage("shell", "-c", SETUP)
    assert done.returncode == 0, done.stderr
    # The last line: Django's shell may say what it imported first.
    pks: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return pks


def in_shell(server: LiveServer, code: str) -> None:
    done = server.manage("shell", "-c", code)
    assert done.returncode == 0, done.stderr


class Opened:
    """A stream read from one iterator: to its first snapshot, then to its end."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_raw()

    async def first_snapshot(self) -> None:
        async for chunk in self._chunks:
            if b"event: stats" in chunk:
                return
        raise AssertionError("the stream ended before its first snapshot")

    async def read_until_closed(self, within: float) -> bytes:
        """What the server sends until it ends the response (or TimeoutError)."""
        body = b""

        async def drain() -> None:
            nonlocal body
            async for chunk in self._chunks:
                body += chunk

        await asyncio.wait_for(drain(), within)
        return body


@contextlib.asynccontextmanager
async def opened(client: httpx.AsyncClient) -> AsyncIterator[Opened]:
    async with client.stream("GET", "/graph/events/") as response:
        assert response.status_code == 200
        stream = Opened(response)
        # Subscribed once its first event left: a recheck from now on finds it.
        await asyncio.wait_for(stream.first_snapshot(), ENDS_WITHIN)
        yield stream


def rechecked(server: LiveServer) -> list[tuple[int, int]]:
    """(ended, checked) of every recheck pass the server logged."""
    found = re.findall(r"(\d+) of (\d+) stream\(s\) checked again ended", server.log())
    return [(int(ended), int(checked)) for ended, checked in found]


async def assert_ends_and_the_other_streams_on(
    server: LiveServer, ending: Opened, kept: Opened
) -> None:
    await ending.read_until_closed(within=ENDS_WITHIN)
    # The other user's stream streams on: checked or not, its access holds.
    with pytest.raises(TimeoutError):
        await kept.read_until_closed(within=1.0)


# -- changes made in another process (a shell), over Redis -------------------------


@pytest.mark.services
@pytest.mark.parametrize("cause", list(CAUSES))
async def test_a_change_of_access_in_a_shell_ends_the_stream_at_once(
    servers: Servers, cause: str
) -> None:
    (server,) = servers.start(services_run=True, graphapp=LONG)
    set_up(server)
    loser, change = CAUSES[cause]
    async with logged_in(server, loser) as losing, logged_in(server, "editor") as staying:
        async with opened(losing) as ending, opened(staying) as kept:
            in_shell(server, change.format(session=losing.cookies["sessionid"]))
            await assert_ends_and_the_other_streams_on(server, ending, kept)
        assert (await losing.get("/graph/events/")).status_code == 403
        assert (await staying.get("/graph/api/stats/")).status_code == 200
    ended, checked = map(sum, zip(*rechecked(server), strict=True))
    assert ended == 1
    if cause == "permission removed from the group":
        assert checked == 2, "everyone's streams are checked again; the editor's held"


@pytest.mark.services
async def test_a_rolled_back_change_ends_nothing(servers: Servers) -> None:
    (server,) = servers.start(services_run=True, graphapp=LONG)
    async with logged_in(server, "viewer") as viewer, logged_in(server, "editor") as editor:
        async with opened(viewer) as kept, opened(editor) as ending:
            # Rolled back first, then a committed change of another user: if the
            # first one had been sent, its stream would be checked too.
            in_shell(
                server,
                "from django.contrib.auth.models import User\n"
                "from django.db import transaction\n"
                "with transaction.atomic():\n"
                '    u = User.objects.get(username="viewer")\n'
                "    u.is_active = False\n"
                "    u.save()\n"
                "    transaction.set_rollback(True)\n"
                'User.objects.get(username="editor").user_permissions.clear()\n',
            )
            await assert_ends_and_the_other_streams_on(server, ending, kept)
        assert (await viewer.get("/graph/api/stats/")).status_code == 200
    assert rechecked(server) == [(1, 1)], "the rolled-back change was not sent"


@pytest.mark.services
async def test_a_password_changed_on_one_process_ends_the_stream_on_the_other(
    servers: Servers,
) -> None:
    a, b = servers.start(2, services_run=True, graphapp=LONG)
    pks = set_up(a)
    async with (
        logged_in(a, "admin") as admin,
        logged_in(b, "viewer") as losing,
        logged_in(b, "member") as staying,
    ):
        async with opened(losing) as ending, opened(staying) as kept:
            await admin_set_password(admin, a, pks["viewer"])
            await assert_ends_and_the_other_streams_on(b, ending, kept)
        assert (await losing.get("/graph/events/")).status_code == 403
    assert rechecked(b) == [(1, 1)]


# -- changes made through the admin, in the server's own process --------------------


class AdminForm(HTMLParser):
    """The fields an admin change form submits as the page shows it."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.fields: list[tuple[str, str]] = []
        self._inside = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self._inside = found.get("id") == self.form_id
        name = found.get("name")
        if not self._inside:
            return
        if tag == "input" and name:
            kind = found.get("type") or "text"
            if kind in {"checkbox", "radio"} and "checked" not in found:
                return
            if kind not in {"submit", "button", "file", "reset", "image"}:
                self.fields.append(
                    (name, found.get("value") or ("on" if kind == "checkbox" else ""))
                )
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in found:
            self.fields.append((self._select, found.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._inside = False


async def admin_save(
    client: httpx.AsyncClient,
    server: LiveServer,
    path: str,
    form_id: str,
    *,
    without: str | None = None,
) -> None:
    """Save the admin form at ``path`` as shown, less every value of field ``without``."""
    page = await client.get(path)
    assert page.status_code == 200
    form = AdminForm(form_id)
    form.feed(page.text)
    assert form.fields, f"no form {form_id} at {path}"
    if without is not None:
        assert any(name == without for name, _ in form.fields), f"{without} not in the form"
    data: dict[str, list[str]] = {}
    for name, value in form.fields:
        if name != without:
            data.setdefault(name, []).append(value)
    saved = await client.post(path, data=data, headers=csrf_headers(client, server))
    assert saved.status_code == 302, saved.text[:2000]


async def admin_set_password(client: httpx.AsyncClient, server: LiveServer, pk: int) -> None:
    password = "another-horse-battery-staple"
    saved = await client.post(
        f"/admin/auth/user/{pk}/password/",
        data={
            "usable_password": "true",
            "password1": password,
            "password2": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers=csrf_headers(client, server),
    )
    assert saved.status_code == 302, saved.text[:2000]


# Who loses the stream, and what the admin saves without.
ADMIN_CAUSES: dict[str, tuple[str, str, str, str]] = {
    "user deactivated": ("viewer", "user/{viewer}", "user_form", "is_active"),
    "permission removed": ("viewer", "user/{viewer}", "user_form", "user_permissions"),
    "group removed from the user": ("member", "user/{member}", "user_form", "groups"),
    "permission removed from the group": ("member", "group/{group}", "group_form", "permissions"),
}


@pytest.mark.parametrize("cause", ["password changed", *ADMIN_CAUSES])
async def test_a_change_of_access_in_the_admin_ends_the_stream_at_once(
    servers: Servers, cause: str
) -> None:
    (server,) = servers.start(graphapp=LONG)
    pks = set_up(server)
    loser = ADMIN_CAUSES[cause][0] if cause in ADMIN_CAUSES else "viewer"
    async with (
        logged_in(server, "admin") as admin,
        logged_in(server, loser) as losing,
        logged_in(server, "editor") as staying,
    ):
        async with opened(losing) as ending, opened(staying) as kept:
            if cause in ADMIN_CAUSES:
                _, page, form_id, field = ADMIN_CAUSES[cause]
                path = f"/admin/auth/{page.format(**pks)}/change/"
                await admin_save(admin, server, path, form_id, without=field)
            else:
                await admin_set_password(admin, server, pks["viewer"])
            await assert_ends_and_the_other_streams_on(server, ending, kept)
        assert (await losing.get("/graph/events/")).status_code == 403
        assert (await staying.get("/graph/api/stats/")).status_code == 200
    assert sum(ended for ended, _ in rechecked(server)) == 1


async def test_a_save_that_leaves_access_as_it_was_ends_no_stream(servers: Servers) -> None:
    (server,) = servers.start(graphapp=LONG)
    pks = set_up(server)
    async with (
        logged_in(server, "admin") as admin,
        logged_in(server, "viewer") as viewer,
        opened(viewer) as kept,
    ):
        # The user saved with every field as it was (the admin's "Save"):
        # checked again, still allowed, streaming on.
        await admin_save(admin, server, f"/admin/auth/user/{pks['viewer']}/change/", "user_form")
        with pytest.raises(TimeoutError):
            await kept.read_until_closed(within=2.0)
    assert rechecked(server) == [(0, 1)]
