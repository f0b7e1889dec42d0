"""A real ASGI server (daphne by default) on a free port and real HTTP/SSE clients,
for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio
import trustme
from cryptography.hazmat.primitives import serialization
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.services import free_port
from tests.site_setup import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
EVENT_TIMEOUT = 10.0
STATS_FIELDS = ("nodes", "edges", "avg_entanglement", "tiers", "types")
APPLICATION = "graphsite.asgi:application"
#: graphsite with the stream served by the Django view (the other path, tests/view_asgi.py).
VIEW_APPLICATION = "tests.view_asgi:application"


def server_options(kind: str, fd: int, workers: int = 0) -> list[str]:
    """The command-line options that make server ``kind`` serve on the listening socket ``fd``,
    in ``workers`` worker processes (0: the server's one process, or its one worker).

    Every kind but granian takes a socket bound by someone else (granian binds
    its own: see ``LiveServer.start``).
    """
    if kind in {"daphne", "graphapp.daphne"} and not workers:
        return ["--fd", str(fd)]
    if kind == "uvicorn":
        return ["--fd", str(fd), "--lifespan", "off", *_workers(workers)]
    if kind == "gunicorn":
        # No control socket: its default path is one per user, not per server.
        worker = ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers or 1)]
        return ["--bind", f"fd://{fd}", *worker, "--no-control-socket"]
    if kind == "hypercorn":
        # 0: the application in hypercorn's own process. A worker process never
        # hears the SIGTERM (docs/deployment-servers.md).
        return ["--bind", f"fd://{fd}", "--workers", str(workers)]
    raise ValueError(f"no server kind {kind!r} with {workers} workers")


def granian_options(port: int, workers: int = 0) -> list[str]:
    address = ["--host", "127.0.0.1", "--port", str(port)]
    return ["--interface", "asginl", *address, "--workers", str(workers or 1)]


def _workers(count: int) -> list[str]:
    return ["--workers", str(count)] if count else []


@dataclass(frozen=True)
class ServerTLS:
    """A certificate for 127.0.0.1 and the test CA that signed it: HTTPS, and so HTTP/2."""

    certfile: Path
    keyfile: Path
    cafile: Path

    @classmethod
    def make(cls, directory: Path) -> ServerTLS:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
        # PKCS#8: the one key format every server here reads (granian reads no other).
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tls = cls(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
        issued.cert_chain_pems[0].write_to_path(str(tls.certfile))
        tls.keyfile.write_bytes(pkcs8)
        ca.cert_pem.write_to_path(str(tls.cafile))
        return tls

    def options(self, kind: str) -> list[str]:
        """The server's options that make it serve HTTPS with this certificate."""
        if kind == "hypercorn":
            return ["--certfile", str(self.certfile), "--keyfile", str(self.keyfile)]
        if kind == "granian":
            return ["--ssl-certificate", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]
        raise ValueError(f"no TLS options for {kind!r} in this harness")

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))


def listening_socket(port: int = 0) -> socket.socket:
    """A socket listening on 127.0.0.1 for a server to take over (``port`` 0: a free one)."""
    listener = socket.socket()
    # The same port again after a restart, though its old connections linger in TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    return listener


def port_of(fd: int) -> int:
    """The port that the socket ``fd`` is bound to."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """graphsite served by daphne (or uvicorn, gunicorn with uvicorn workers, hypercorn,
    granian) in its own process, on its own SQLite file."""

    workdir: Path
    graphapp: dict[str, Any] = field(default_factory=dict)
    channel_backend: str = ""
    database_url: str = ""  # default: a SQLite file in workdir
    redis_url: str = ""  # default: Channels' in-memory layer
    redis_prefix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    # or "graphapp.daphne" (daphne bounding request bodies), "uvicorn", "gunicorn",
    # "hypercorn", "granian"
    server: str = "daphne"
    clock_shift: float = 0.0  # seconds this server's wall clock is ahead (< 0: behind)
    tls: ServerTLS | None = None  # HTTPS (hypercorn, granian)
    workers: int = 0  # worker processes (0: the server's one process or worker)
    port: int = 0
    # graphsite's (the stream in front of Django), or VIEW_APPLICATION
    application: str = APPLICATION
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """What an httpx client of this server needs (trust in the test CA, over HTTPS)."""
        return {"verify": self.tls.client_context()} if self.tls else {}

    @property
    def log_path(self) -> Path:
        return self.workdir / "daphne.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
        if self.redis_url:
            env |= {"REDIS_URL": self.redis_url, "REDIS_PREFIX": self.redis_prefix}
        env |= {
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "DATABASE_URL": self.database_url or f"sqlite:///{self.workdir / 'db.sqlite3'}",
            "GRAPHAPP_JSON": json.dumps(self.graphapp),
            "TEST_CHANNEL_BACKEND": self.channel_backend,
            "PYTHONPATH": str(ROOT),
            "GRAPHAPP_LOG_LEVEL": "DEBUG",
            **self.extra_env,
        }
        return env

    def setup(self) -> None:
        """Migrate the server's database and create the test users."""
        subprocess.run(
            [sys.executable, "-m", "tests.site_setup"], cwd=ROOT, env=self.env(), check=True
        )

    def start(self, *, setup: bool = True, port: int = 0, fd: int | None = None) -> None:
        """Serve on ``port`` (a free one by default), or on the inherited listening
        socket ``fd`` (the caller keeps it open: several servers may take turns on it)."""
        if setup:
            self.setup()
        if fd is not None:
            self.port = port_of(fd)
            self._spawn(server_options(self.server, fd, self.workers), pass_fds=[fd])
        elif self.server == "granian":
            self.port = port or free_port()
            self._spawn(granian_options(self.port, self.workers))
        else:
            with listening_socket(port) as listener:
                self.port = listener.getsockname()[1]
                options = server_options(self.server, listener.fileno(), self.workers)
                self._spawn(options, pass_fds=[listener.fileno()])
        self._wait_ready()

    def _spawn(self, options: list[str], pass_fds: list[int] | None = None) -> None:
        if self.tls:
            options = [*options, *self.tls.options(self.server)]
        with open(self.log_path, "ab") as log:
            # The clock moved inside the process only (see tests/shifted_clock.py).
            shift = ["tests.shifted_clock", str(self.clock_shift)] if self.clock_shift else []
            self.process = subprocess.Popen(
                [sys.executable, "-m", *shift, self.server, *options, self.application],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds or [],
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{self.url}/accounts/login/", timeout=2, **self.client_options())
                # A redirect answers too: to HTTPS, where the server serves HTTPS only.
                if ready.status_code in {200, 301} and self._workers_started():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{self.server} did not answer within 30 s:\n{self.log()}")

    def _workers_started(self) -> bool:
        """Whether granian started every worker: one that is still starting when
        the main process gets SIGTERM starts after it and is never stopped."""
        if self.server != "granian" or not self.workers:
            return True
        return self.log().count("Started worker-") >= self.workers

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Stop, then serve again on the same port and database (what browsers see
        when a server is redeployed)."""
        self.stop()
        self.start(setup=False, port=self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )


async def login(
    server: LiveServer, username: str, *, http2: bool = False, form: str = "/accounts/login/"
) -> httpx.AsyncClient:
    """A client holding a session of ``username``, logged in through the login form
    at ``form`` (``http2``: offering HTTP/2, which a server with ``tls`` may choose)."""
    client = httpx.AsyncClient(
        base_url=server.url, timeout=EVENT_TIMEOUT, http2=http2, **server.client_options()
    )
    answer = await submit_login(client, username, path=form)
    assert answer.status_code == 302, f"login of {username} failed: {answer.status_code}"
    return client


async def submit_login(
    client: httpx.AsyncClient,
    username: str,
    password: str = PASSWORD,
    path: str = "/accounts/login/",
) -> httpx.Response:
    """One login through the form at ``path`` (graphsite's, or the admin's), as a
    browser posts it: the form first, for its CSRF cookie."""
    (await client.get(path)).raise_for_status()
    return await client.post(
        path,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": str(client.base_url.join(path))},
    )


@contextlib.asynccontextmanager
async def logged_in(
    server: LiveServer, username: str, *, http2: bool = False, form: str = "/accounts/login/"
) -> AsyncIterator[httpx.AsyncClient]:
    client = await login(server, username, http2=http2, form=form)
    try:
        yield client
    finally:
        await client.aclose()


async def logout(client: httpx.AsyncClient, server: LiveServer) -> None:
    """Log ``client`` out through Django's logout view, as a browser's form does."""
    answer = await client.post(
        "/accounts/logout/",
        data={"csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers=csrf_headers(client, server),
    )
    assert answer.status_code in {200, 302}


def csrf_headers(client: httpx.AsyncClient, server: LiveServer) -> dict[str, str]:
    return {"X-CSRFToken": client.cookies["csrftoken"], "Referer": f"{server.url}/"}


async def post_json(
    client: httpx.AsyncClient, server: LiveServer, path: str, payload: Any
) -> httpx.Response:
    return await client.post(
        path,
        content=json.dumps(payload),
        headers={**csrf_headers(client, server), "Content-Type": "application/json"},
    )


async def create_node(
    client: httpx.AsyncClient, server: LiveServer, **fields: Any
) -> dict[str, Any]:
    """Create a node through the JSON API (a FACT at 0.9 unless told otherwise)."""
    payload = {"content": "a fact", "node_type": "FACT", "momentum": 0.9, **fields}
    answer = await post_json(client, server, "/graph/api/nodes/", payload)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


class EventStream:
    """An open SSE connection whose events a background task collects.

    ``next()`` reads what a client of the ``stats`` events reads; the ``change``
    and ``history`` events wait apart, for ``next_change()`` and ``next_history()``.
    Every ``retry:`` hint the stream sent is kept in ``retries``; ``ended()``
    waits for the server to end it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        path: str = "/graph/events/",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.headers = headers or {}
        self.events: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        self.changes: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        self.history: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        self.response: httpx.Response | None = None
        self.retries: list[int] = []
        self._opened: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async with aconnect_sse(self.client, "GET", self.path, headers=self.headers) as source:
                self._opened.set_result(source.response)
                async for event in source.aiter_sse():
                    if event.retry is not None:
                        self.retries.append(event.retry)
                    if event.event == "change":
                        await self.changes.put(event)
                    elif event.event == "history":
                        await self.history.put(event)
                    elif event.data:
                        await self.events.put(event)
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            raise

    async def open(self) -> httpx.Response:
        self.response = await asyncio.wait_for(asyncio.shield(self._opened), EVENT_TIMEOUT)
        return self.response

    async def next(self, within: float = EVENT_TIMEOUT) -> ServerSentEvent:
        return await asyncio.wait_for(self.events.get(), within)

    async def next_stats(self, within: float = EVENT_TIMEOUT) -> dict[str, Any]:
        event = await self.next(within)
        assert event.event == "stats", event
        data: dict[str, Any] = json.loads(event.data)
        data["_id"] = event.id
        return data

    async def next_change(self, within: float = EVENT_TIMEOUT) -> dict[str, Any]:
        event = await asyncio.wait_for(self.changes.get(), within)
        data: dict[str, Any] = json.loads(event.data)
        data["_id"] = event.id
        return data

    async def next_history(self, within: float = EVENT_TIMEOUT) -> list[dict[str, Any]]:
        event = await asyncio.wait_for(self.history.get(), within)
        points: list[dict[str, Any]] = json.loads(event.data)["points"]
        return points

    async def current(self, now: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first event that shows the graph as it is now.

        Changes made just before the stream opened may still be on their way
        (publication is coalesced); this reads past the older events they
        follow, so that a test's "before" cannot be taken from one of them.
        """
        if now is None:
            now = (await self.client.get("/graph/api/stats/")).json()
        while True:
            event = await self.next_stats()
            if all(event[key] == now[key] for key in STATS_FIELDS):
                return event

    async def ended(self, within: float = EVENT_TIMEOUT) -> None:
        """Wait until the server ends the stream; raise if it was cut instead
        (an HTTP/1.1 chunked body without its last chunk is an httpx error)."""
        await asyncio.wait_for(asyncio.shield(self._task), within)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


class ReconnectingStream:
    """An SSE client that reconnects as a browser's EventSource does.

    When a stream ends or the network fails, it waits the last ``retry:`` it was
    sent and connects again; an answer other than 200 stops it for good
    (``refused``). ``connections`` holds, for each connection answered with 200,
    the ``stats`` events it brought; ``failures`` every network error met (a
    refused connect, a stream cut short).
    """

    def __init__(self, client: httpx.AsyncClient, path: str = "/graph/events/") -> None:
        self.client = client
        self.path = path
        self.retry = 3000  # what browsers wait before the server said otherwise
        self.connections: list[list[dict[str, Any]]] = []
        self.failures: list[str] = []
        self.refused: int | None = None
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.refused is None:
            try:
                await self._connect_once()
            except httpx.TransportError as exc:
                self.failures.append(repr(exc))
            await asyncio.sleep(self.retry / 1000)

    async def _connect_once(self) -> None:
        async with aconnect_sse(self.client, "GET", self.path) as source:
            if source.response.status_code != 200:
                self.refused = source.response.status_code
                await self._note()
                return
            events: list[dict[str, Any]] = []
            await self._note(lambda: self.connections.append(events))
            async for event in source.aiter_sse():
                if event.retry is not None:
                    self.retry = event.retry
                if event.event == "stats":
                    await self._note(functools.partial(events.append, json.loads(event.data)))

    async def _note(self, change: Callable[[], None] | None = None) -> None:
        async with self._changed:
            if change is not None:
                change()
            self._changed.notify_all()

    async def wait_until(
        self, predicate: Callable[[], bool], within: float = EVENT_TIMEOUT
    ) -> None:
        """Wait (bounded) until ``predicate()`` holds, or the stream was refused."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: predicate() or self.refused is not None), within
            )
        assert self.refused is None, f"refused with {self.refused}"

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    events = EventStream(client, headers=headers)
    try:
        await events.open()
        yield events
    finally:
        await events.close()


async def read_until_closed(response: httpx.Response, within: float) -> bytes:
    """Everything the server sends until it ends the response (or TimeoutError)."""
    body = b""

    async def drain() -> None:
        nonlocal body
        async for chunk in response.aiter_raw():
            body += chunk

    await asyncio.wait_for(drain(), within)
    return body


async def ended_by(
    client: httpx.AsyncClient, action: Callable[[], Awaitable[object]], within: float = 10.0
) -> None:
    """Open a stream, and once its first snapshot came, run ``action``; then
    wait (bounded) until the server ends the stream."""
    async with client.stream("GET", "/graph/events/") as opened:
        assert opened.status_code == 200
        chunks = opened.aiter_raw()
        assert b"event: stats" in await asyncio.wait_for(anext(chunks), within)
        await action()

        async def drain() -> None:
            async for _ in chunks:
                pass

        await asyncio.wait_for(drain(), within)


async def health(server: LiveServer) -> dict[str, Any]:
    async with logged_in(server, "admin") as admin:
        answer = await admin.get("/graph/api/health/")
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result


async def wait_for_health(server: LiveServer, **expected: Any) -> dict[str, Any]:
    """Poll the health endpoint until it reports ``expected`` (bounded)."""
    report: dict[str, Any] = {}
    for _ in range(100):
        report = await health(server)
        if all(report[key] == value for key, value in expected.items()):
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"health never reached {expected}: {report}")


async def group_members(server: LiveServer) -> int:
    """Members of graphapp's group, read from the layer itself."""
    if server.redis_url:
        client = redis.asyncio.Redis.from_url(server.redis_url)
        try:
            return int(await client.zcard(f"{server.redis_prefix}:group:graphapp.stats"))
        finally:
            await client.aclose()
    members: int = (await health(server))["group_members"]
    return members
