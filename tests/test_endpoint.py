"""End to end: the JSON API answers every failure in JSON, under daphne and uvicorn.

Hostile bodies (multipart, form-encoded with too many fields or another charset;
too large, in-process: on graphsite's servers graphapp.bodylimit refuses those
first), methods it does not take, a missing CSRF token, paths that are no
endpoint; and a database that fails: locked by another connection's write
transaction, or a read-only file. Each gets JSON with the right status (and
``Retry-After`` with 503), never Django's HTML pages or a traceback (the test
servers run with DEBUG on), and nothing is saved. graphapp.endpoint maps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from graphapp.endpoint import database_failed, json_endpoint
from graphapp.models import Node
from tests.conftest import Servers
from tests.live import LiveServer, csrf_headers, logged_in, post_json
from tests.sqlite_states import locked, read_only

pytestmark = pytest.mark.e2e

NODES = "/graph/api/nodes/"
STATS = "/graph/api/stats/"
LIMIT: int = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server of each kind for the module, always on its own SQLite file (the
    database states below are SQLite's)."""
    servers = Servers(tmp_path_factory.mktemp(f"endpoint-{request.param}"))
    try:
        yield servers.start(services_run=False, server=request.param)[0]
    finally:
        servers.stop()


@pytest.fixture
async def editor(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(server, "editor") as client:
        yield client


def database(server: LiveServer) -> Path:
    return server.workdir / "db.sqlite3"


def json_answer(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"] == "application/json", answer.text[:500]
    body: dict[str, Any] = answer.json()
    return body


def body_error(answer: httpx.Response, status: int = 400) -> str:
    """The one message of a refused body: ``{"errors": {"__all__": [...]}}``."""
    errors = json_answer(answer, status)["errors"]
    assert set(errors) == {"__all__"}, errors
    return " ".join(errors["__all__"])


async def node_count(client: httpx.AsyncClient) -> int:
    count: int = json_answer(await client.get(STATS), 200)["nodes"]
    return count


def form_headers(
    client: httpx.AsyncClient, server: LiveServer, content_type: str
) -> dict[str, str]:
    return {**csrf_headers(client, server), "Content-Type": content_type}


# -- Bodies it cannot read -----------------------------------------------------------


async def test_a_multipart_body_is_a_400_in_json(
    server: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    answer = await editor.post(
        NODES,
        data={"content": "x", "node_type": "FACT"},
        files={"metadata": ("m.json", b"{}", "application/json")},
        headers=csrf_headers(editor, server),
    )
    assert "multipart/form-data" in body_error(answer)
    assert await node_count(editor) == before


async def test_a_malformed_multipart_body_is_a_400_and_json_once_it_reaches_django(
    server: LiveServer, editor: httpx.AsyncClient
) -> None:
    """daphne's Twisted parses multipart bodies itself and answers a malformed one
    with a bare 400 before the application; uvicorn hands it on, and the API says why."""
    before = await node_count(editor)
    headers = form_headers(editor, server, "multipart/form-data; boundary=x")
    answer = await editor.post(NODES, content=b"not multipart at all", headers=headers)
    if server.server == "daphne":
        assert answer.status_code == 400
        assert answer.content == b""
    else:
        assert "multipart/form-data" in body_error(answer)
    assert await node_count(editor) == before


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        pytest.param(FORM, "&".join(f"f{i}=1" for i in range(1001)), FORM, id="form-1001-fields"),
        pytest.param(f"{FORM}; charset=latin-1", "a=\xe9", "latin-1", id="form-latin-1"),
        pytest.param(
            "application/json; charset=latin-1", '{"content": "\xe9"}', "latin-1", id="json-latin-1"
        ),
        pytest.param("text/plain", "not json", "text/plain", id="text"),
        pytest.param("application/json", '{"content": ', "Malformed JSON", id="invalid-json"),
    ],
)
async def test_a_body_it_cannot_read_is_a_400_in_json(
    server: LiveServer, editor: httpx.AsyncClient, content_type: str, body: str, says: str
) -> None:
    before = await node_count(editor)
    answer = await editor.post(
        NODES, content=body.encode("latin-1"), headers=form_headers(editor, server, content_type)
    )
    assert says in body_error(answer)
    assert await node_count(editor) == before


def multipart(size: int) -> tuple[bytes, str]:
    """A well-formed multipart body of at least ``size`` bytes, and its content type
    (daphne's Twisted answers a malformed one with 400 itself, before Django)."""
    request = httpx.Request(
        "POST", "http://x/", data={"content": "x"}, files={"f": ("f.json", b"x" * size)}
    )
    return request.read(), request.headers["Content-Type"]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["form", "json", "multipart"])
def test_a_body_over_the_upload_limit_is_a_413_in_json(kind: str) -> None:
    """In-process, where nothing stands before Django: graphsite's servers refuse
    such a body even earlier (graphapp.bodylimit, tests/test_bodylimit.py)."""
    editor = User.objects.create_user("editor")
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_node", "add_node"]))
    client = Client()
    client.force_login(editor)
    body, content_type = {
        "form": (b"a=" + b"x" * LIMIT, FORM),
        "json": (json.dumps({"content": "x" * LIMIT}).encode(), "application/json"),
        "multipart": multipart(LIMIT),
    }[kind]
    answer = client.generic("POST", NODES, body, content_type=content_type)
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert f"{LIMIT:,}" in json.loads(answer.content)["error"]
    assert not Node.objects.exists()


async def test_json_sent_as_a_form_is_still_read(
    server: LiveServer, editor: httpx.AsyncClient
) -> None:
    """What ``curl -d`` sends: JSON under the form content type."""
    node = {"content": "sent by curl -d", "node_type": "FACT", "metadata": {"a": "b=c&d"}}
    answer = await editor.post(
        NODES, content=json.dumps(node).encode(), headers=form_headers(editor, server, FORM)
    )
    assert json_answer(answer, 201)["metadata"] == {"a": "b=c&d"}


# -- Methods, CSRF, paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", NODES, "GET, POST"),
        ("PUT", NODES, "GET, POST"),
        ("POST", STATS, "GET"),
        ("PATCH", "/graph/api/history/", "GET"),
        ("POST", "/graph/api/health/", "GET"),
    ],
)
async def test_a_method_it_does_not_take_is_a_405_in_json(
    server: LiveServer, editor: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    # With the CSRF header and without: the method is refused first.
    for headers in (csrf_headers(editor, server), {}):
        answer = await editor.request(method, path, headers=headers)
        assert method in json_answer(answer, 405)["error"]
        assert answer.headers["Allow"] == allowed


async def test_a_post_without_the_csrf_token_is_a_403_in_json(
    server: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    node = b'{"content": "x", "node_type": "FACT"}'
    for body, content_type in ((node, "application/json"), (node, FORM), multipart(10)):
        answer = await editor.post(
            NODES, content=body, headers={"Content-Type": content_type, "Referer": f"{server.url}/"}
        )
        assert "CSRF" in json_answer(answer, 403)["error"]
    # A token in a form field does not count: the API reads no form.
    token = editor.cookies["csrftoken"]
    answer = await editor.post(
        NODES, data={"csrfmiddlewaretoken": token}, headers={"Referer": f"{server.url}/"}
    )
    assert "CSRF" in json_answer(answer, 403)["error"]
    assert await node_count(editor) == before


@pytest.mark.parametrize(
    "path",
    [
        "/graph/api/",
        "/graph/api/nope/",
        "/graph/api/nodes/1/",
        "/graph/api/nope",
        "/graph/api/nodes",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_a_path_under_the_api_that_is_no_endpoint_is_a_404_in_json(
    server: LiveServer, editor: httpx.AsyncClient, path: str, method: str
) -> None:
    answer = await editor.request(method, path)
    if path == "/graph/api/nodes" and method == "GET":
        # An endpoint without its final slash: redirected there, as APPEND_SLASH does.
        assert answer.status_code == 301
        assert answer.headers["Location"] == NODES
        return
    message = json_answer(answer, 404)["error"]
    assert "No such endpoint" in message
    if path == "/graph/api/nodes":
        assert NODES in message


# -- A database that fails -------------------------------------------------------------


async def assert_unavailable(answer: httpx.Response) -> None:
    assert "database" in json_answer(answer, 503)["error"]
    assert int(answer.headers["Retry-After"]) >= 1


async def test_a_locked_database_is_a_503_in_json_for_reads_and_writes(server: LiveServer) -> None:
    async with logged_in(server, "editor") as editor, logged_in(server, "admin") as admin:
        before = await node_count(editor)
        with locked(database(server)):
            answers = await asyncio.gather(
                editor.get(NODES),
                editor.get(STATS),
                editor.get("/graph/api/history/"),
                post_json(editor, server, NODES, {"content": "locked out", "node_type": "FACT"}),
                admin.get("/graph/api/health/"),
            )
        for answer in answers:
            await assert_unavailable(answer)
        # The lock gone, the same requests succeed: nothing was left broken.
        assert await node_count(editor) == before
        json_answer(await editor.get(NODES), 200)
        created = await post_json(editor, server, NODES, {"content": "after", "node_type": "FACT"})
        json_answer(created, 201)
        assert await node_count(editor) == before + 1


async def test_a_read_only_database_is_a_503_in_json_for_writes(server: LiveServer) -> None:
    async with logged_in(server, "editor") as editor:
        before = await node_count(editor)
        with read_only(database(server)):
            for payload in (
                {"content": "nowhere", "node_type": "FACT"},
                [{"content": "n", "node_type": "CODE"}] * 3,
            ):
                await assert_unavailable(await post_json(editor, server, NODES, payload))
            # Reads still work.
            assert await node_count(editor) == before
            json_answer(await editor.get(NODES), 200)
        json_answer(
            await post_json(editor, server, NODES, {"content": "again", "node_type": "FACT"}), 201
        )
        assert await node_count(editor) == before + 1


# -- The mapping itself, for any view that uses it -------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("database is locked"),
        InterfaceError("connection already closed"),
        InternalError("cannot execute INSERT in a read-only transaction"),
    ],
    ids=type,
)
async def test_a_database_that_may_come_back_is_a_503_with_retry_after(
    settings: Any, failure: Exception
) -> None:
    settings.GRAPHAPP = {"RETRY": 7500}

    @json_endpoint("GET")
    async def view(request: HttpRequest) -> HttpResponse:
        raise failure

    answer = await view(RequestFactory().get("/graph/api/x/"))
    assert answer.status_code == 503
    assert answer["Retry-After"] == "8"  # RETRY's 7.5 s, rounded up
    assert "database" in json.loads(answer.content)["error"]


@pytest.mark.parametrize(
    "failure",
    [IntegrityError("UNIQUE constraint failed"), ProgrammingError("no such table"), DataError("x")],
    ids=type,
)
def test_a_database_error_that_waiting_will_not_mend_is_a_500_in_json(failure: Exception) -> None:
    assert isinstance(failure, DatabaseError)
    answer = database_failed(failure, RequestFactory().post("/graph/api/nodes/"))
    assert answer.status_code == 500
    assert "Retry-After" not in answer
    assert json.loads(answer.content)["error"]
