"""Request bodies over the limit: refused with 413 before they are read, under
uvicorn (graphapp.bodylimit alone) and daphne (python -m graphapp.daphne).

Real servers on real sockets, and a raw HTTP/1.1 client: it sends the request's
head, and as much of the body as the test says, then reads the answer until the
server closes the connection. What the servers' memory does meanwhile is the
benchmark's to measure (bench scenario 10), not these tests'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from django.conf import global_settings

from graphapp.bodylimit import BodyLimit
from graphapp.types import Message, Receive, Scope, Send
from tests.conftest import Servers
from tests.live import (
    EVENT_TIMEOUT,
    ROOT,
    LiveServer,
    create_node,
    csrf_headers,
    logged_in,
)

LIMIT = global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # graphsite keeps Django's
API = "/graph/api/nodes/"
GERMAN = "de-DE,de;q=0.9"
CHUNK = 256 * 1024
TOO_LARGE = f"The request body is larger than {LIMIT:,} bytes."

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["graphapp.daphne", "uvicorn"])
def bounded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """graphsite under a server on which BodyLimit answers before the body is read."""
    servers = Servers(tmp_path_factory.mktemp(request.param))
    try:
        yield servers.start(server=request.param)[0]
    finally:
        servers.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> str:
        assert self.headers["content-type"] == "application/json", self.headers
        message: str = json.loads(self.body)["error"]
        return message


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return Answer(int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body)


@contextlib.asynccontextmanager
async def connection(
    port: int, path: str, framing: str, **headers: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to 127.0.0.1:``port`` on which the head of a POST to ``path``
    has been sent (``framing``: its Content-Length or Transfer-Encoding)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", framing]
    lines += ["Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def one_answer(reader: asyncio.StreamReader) -> Answer:
    """The next answer on the connection, which the server may keep open."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EVENT_TIMEOUT)
    answer = parse(head)
    length = int(answer.headers["content-length"])
    answer.body = await asyncio.wait_for(reader.readexactly(length), EVENT_TIMEOUT)
    return answer


async def until_closed(reader: asyncio.StreamReader) -> Answer:
    """Everything the server sends until it closes the connection (bounded)."""
    return parse(await asyncio.wait_for(reader.read(), EVENT_TIMEOUT))


async def chunked_over_the_limit(port: int, path: str) -> Answer:
    """The answer to a chunked POST that stops one byte past the limit, without
    its last chunk: a server that waits for the rest never answers."""
    async with connection(port, path, "Transfer-Encoding: chunked") as (reader, writer):
        sent = 0
        while sent <= LIMIT:
            size = min(CHUNK, LIMIT + 1 - sent)
            writer.write(b"%x\r\n%s\r\n" % (size, b"0" * size))
            await writer.drain()
            sent += size
        return await until_closed(reader)


def too_large(answer: Answer) -> bool:
    """The 413 that graphapp answers the JSON API, with its message."""
    return answer.status == 413 and answer.error() == TOO_LARGE


@pytest.mark.parametrize("length", [LIMIT + 1, 2**40], ids=["limit+1", "1TiB"])
async def test_a_declared_length_over_the_limit_gets_413_before_the_body_is_sent(
    bounded: LiveServer, length: int
) -> None:
    # A client that waits for `100 Continue` before it sends the body, as curl
    # does for large bodies: it gets the 413 instead, and a closed connection.
    framing = f"Content-Length: {length}"
    async with connection(bounded.port, API, framing, Expect="100-continue") as (reader, _):
        answer = await until_closed(reader)
    assert too_large(answer)
    assert answer.headers["connection"] == "close"


async def test_a_chunked_body_is_cut_with_413_once_it_passes_the_limit(
    bounded: LiveServer,
) -> None:
    answer = await chunked_over_the_limit(bounded.port, API)
    assert too_large(answer)


async def test_under_plain_daphne_the_413_comes_once_the_whole_body_is_in(
    live_server_default: LiveServer,
) -> None:
    # daphne calls the application only then (docs/deployment.md, "Request
    # bodies"); BodyLimit still spares Django's copy of it. The body read,
    # daphne keeps the connection.
    length = LIMIT + 1
    async with connection(live_server_default.port, API, f"Content-Length: {length}") as (
        reader,
        writer,
    ):
        for offset in range(0, length, CHUNK):
            writer.write(b"0" * min(CHUNK, length - offset))
            await writer.drain()
        answer = await one_answer(reader)
    assert too_large(answer)


async def test_outside_the_api_the_refusal_is_plain_text_in_the_browsers_language(
    bounded: LiveServer,
) -> None:
    framing = f"Content-Length: {LIMIT + 1}"
    async with connection(bounded.port, "/admin/login/", framing, Accept_Language=GERMAN) as (
        reader,
        _,
    ):
        answer = await until_closed(reader)
    assert answer.status == 413
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.body.decode() == f"Der Inhalt der Anfrage ist größer als {LIMIT:,} Bytes.\n"


async def test_bodies_within_the_limit_are_served_as_before(bounded: LiveServer) -> None:
    # The admin's login form (a 302 to the admin, or login() fails), then the API.
    async with logged_in(bounded, "admin", form="/admin/login/?next=/admin/") as admin:
        created = await create_node(admin, bounded, content="under the limit")
        assert created["content"] == "under the limit"
        await assert_django_judges_a_body_at_the_limit(admin, bounded, API)


async def assert_django_judges_a_body_at_the_limit(
    client: httpx.AsyncClient, server: LiveServer, url: str
) -> None:
    """A JSON body of exactly the limit reaches the API: Django answers it, in JSON."""
    padded = json.dumps({"content": "", "node_type": "FACT", "momentum": 0.5})
    body = (padded[:-1] + " " * (LIMIT - len(padded)) + "}").encode()
    assert len(body) == LIMIT
    headers = {**csrf_headers(client, server), "Content-Type": "application/json"}
    answer = await client.post(url, content=body, headers=headers)
    assert answer.status_code != 413, answer.text
    assert answer.headers["content-type"] == "application/json"


def test_graphapp_daphne_refuses_an_application_without_a_body_limit() -> None:
    started = subprocess.run(
        [sys.executable, "-m", "graphapp.daphne", "graphsite.asgi:django_application"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "is not a graphapp.bodylimit.BodyLimit (ASGIHandler)" in started.stderr


# -- BodyLimit in the process: what an application that answers early meets ---------------


async def test_an_application_that_answered_before_the_limit_keeps_its_answer() -> None:
    chunks = [b"x" * 600, b"x" * 600]
    told: list[str] = []
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    async def answers_then_reads(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        told.extend([(await receive())["type"], (await receive())["type"]])
        await send({"type": "http.response.body", "body": b"after the cut"})

    app = BodyLimit(answers_then_reads, max_bytes=1000)
    await app({"type": "http", "path": "/", "headers": []}, receive, send)
    # Told that the client left once the body passed the limit; its 200 went
    # out, no 413 after it, and nothing it sent after the cut.
    assert told == ["http.request", "http.disconnect"]
    assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]
