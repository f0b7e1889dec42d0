"""graphsite behind Debian's nginx, configured by deploy/nginx/graphapp.conf as shipped.

Each test runs nginx in a prefix of its own (``nginx -p PREFIX -c CONF``) on a
free port of 127.0.0.1, in front of real daphne processes run as in production
(DEBUG off: nginx alone serves the static files, from what ``collectstatic``
gathered).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests import services
from tests.conftest import Servers
from tests.live import (
    EVENT_TIMEOUT,
    ROOT,
    EventStream,
    LiveServer,
    create_node,
    health,
    logged_in,
    post_json,
    submit_login,
)
from tests.site_setup import PASSWORD
from tests.test_bodylimit import (
    API,
    LIMIT,
    assert_django_judges_a_body_at_the_limit,
    chunked_over_the_limit,
    connection,
    too_large,
    until_closed,
)
from tests.test_browser import ARGS, CHROMIUM, shows_nodes, until_live

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SNIPPET = ROOT / "deploy" / "nginx" / "graphapp.conf"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.path.exists(NGINX) and not services.required(),
        reason="Debian's nginx is not installed (make nginx installs it)",
    ),
]
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not services.required(),
    reason="Debian's chromium is not installed (make chromium installs it)",
)

# The upstreams as in production: no static files of their own, no debug pages.
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


@dataclass
class Nginx:
    """nginx in a prefix of its own, including the snippet in front of ``upstreams``."""

    prefix: Path
    upstreams: list[LiveServer]
    static_root: Path | None  # None: the server block forgets to set it
    balance: str = ""  # an upstream method (least_conn, ...); round robin if empty
    tls: bool = False
    port: int = field(default_factory=services.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def config(self) -> str:
        temp = self.prefix / "temp"
        servers = "".join(f"server 127.0.0.1:{server.port};\n" for server in self.upstreams)
        listen = f"127.0.0.1:{self.port}"
        tls = ""
        if self.tls:
            listen += " ssl"
            key = self.prefix / "key.pem"
            tls = f"ssl_certificate {self.certificate(key)}; ssl_certificate_key {key};"
        # Run as root (a container), the workers would drop to nobody, who cannot
        # read the test's temporary directory.
        user = "user root;" if os.geteuid() == 0 else ""
        static = f"set $graphapp_static_root {self.static_root};" if self.static_root else ""
        return f"""
            {user}
            worker_processes 1;
            pid {self.prefix}/nginx.pid;
            error_log {self.prefix}/error.log info;
            events {{ worker_connections 256; }}
            http {{
                include /etc/nginx/mime.types;
                access_log {self.prefix}/access.log;
                client_body_temp_path {temp}/body;
                proxy_temp_path {temp}/proxy;
                fastcgi_temp_path {temp}/fastcgi;
                uwsgi_temp_path {temp}/uwsgi;
                scgi_temp_path {temp}/scgi;
                upstream graphapp {{
                    {self.balance + ";" if self.balance else ""}
                    {servers}
                }}
                server {{
                    listen {listen};
                    {tls}
                    {static}
                    include {SNIPPET};
                }}
            }}
        """

    def certificate(self, key: Path) -> Path:
        """A self-signed certificate for 127.0.0.1, its private key written to ``key``."""
        path = self.prefix / "cert.pem"
        request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(
            [*request, *subject, "-keyout", str(key), "-out", str(path)],
            check=True,
            capture_output=True,
        )
        return path

    def command(self, *options: str) -> list[str]:
        """nginx with this prefix and its configuration (written now), plus ``options``."""
        assert os.path.exists(NGINX), f"no nginx at {NGINX}: `make nginx` installs it"
        (self.prefix / "temp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config())
        return [NGINX, "-p", str(self.prefix), "-c", str(conf), *options]

    def start(self) -> None:
        command = self.command("-g", "daemon off;")
        with open(self.prefix / "stderr.log", "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"nginx exited:\n{self.log()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen within 10 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.prefix / "stderr.log", self.prefix / "error.log")
            if path.exists()
        )


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``collectstatic`` gathers for graphsite (the admin's and graphapp's)."""
    root = tmp_path_factory.mktemp("staticfiles")
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "graphsite.settings",
        "DJANGO_STATIC_ROOT": str(root),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return root


@pytest.fixture
def proxy(tmp_path: Path, static_root: Path) -> Iterator[Callable[..., Nginx]]:
    """Start nginx in front of the given servers: ``proxy([a, b], balance=..., tls=...)``."""
    started: list[Nginx] = []

    def start(upstreams: list[LiveServer], **options: Any) -> Nginx:
        nginx = Nginx(tmp_path / f"nginx-{len(started)}", upstreams, static_root, **options)
        started.append(nginx)
        nginx.start()
        return nginx

    yield start
    for nginx in started:
        nginx.stop()


@pytest.fixture
async def context() -> AsyncIterator[BrowserContext]:
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield await browser.new_context(ignore_https_errors=True)
        await browser.close()


async def sign_in(context: BrowserContext, nginx: Nginx, path: str) -> Page:
    """A page of ``context`` signed in as admin through nginx, at ``path``."""
    page = await context.new_page()
    await page.goto(f"{nginx.url}/accounts/login/?next={path}")
    await page.fill("#id_username", "admin")
    await page.fill("#id_password", PASSWORD)
    await page.click("input[type=submit]")
    await page.wait_for_url(f"{nginx.url}{path}")
    return page


def test_nginx_refuses_the_snippet_without_a_static_root(tmp_path: Path) -> None:
    never_started = LiveServer(tmp_path, port=services.free_port())
    nginx = Nginx(tmp_path / "nginx", [never_started], static_root=None)
    checked = subprocess.run(nginx.command("-t"), capture_output=True, text=True, check=False)
    assert checked.returncode != 0
    assert 'unknown "graphapp_static_root" variable' in checked.stderr


# A plain EventSource, as the README shows it: the browser's own reconnection.
OPEN_EVENT_SOURCE = """() => {
    window.seen = [];
    window.errors = 0;
    window.source = new EventSource("/graph/events/");
    window.source.addEventListener("stats", (event) => window.seen.push(JSON.parse(event.data)));
    window.source.addEventListener("error", () => { window.errors += 1; });
}"""
CLOSED = 2  # EventSource.CLOSED: it has given up


@needs_chromium
@pytest.mark.parametrize("stop", ["kill", "terminate"])
async def test_eventsource_and_live_page_survive_a_restart_of_the_upstream(
    context: BrowserContext, servers: Servers, proxy: Callable[..., Nginx], stop: str
) -> None:
    (server,) = servers.start(graphapp={"RETRY": 300}, extra_env=PRODUCTION)
    nginx = proxy([server])
    live = await until_live(await sign_in(context, nginx, "/graph/live/"))
    native = await context.new_page()
    await native.goto(f"{nginx.url}/graph/api/stats/")
    await native.evaluate(OPEN_EVENT_SOURCE)
    await native.wait_for_function("window.seen.length > 0")
    before: int = await native.evaluate("window.seen.at(-1).nodes")

    assert server.process is not None
    if stop == "kill":  # a crash
        server.process.kill()
        server.process.wait()
    else:  # a redeploy: graphapp drains its streams (then refuses new ones), daphne exits
        server.stop()
    # The stream is gone and the browser has asked again at least once in the gap.
    await native.wait_for_function("window.errors >= 2")
    assert await native.evaluate("window.source.readyState") != CLOSED

    server.start(setup=False, port=server.port)
    async with logged_in(server, "editor") as editor:
        await create_node(editor, server)
    await native.wait_for_function(f"window.seen.some((stats) => stats.nodes === {before + 1})")
    await until_live(live)
    await live.wait_for_function(shows_nodes(before + 1))


@contextlib.asynccontextmanager
async def raw_stream(port: int, path: str, session: str) -> AsyncIterator[bytes]:
    """GET ``path`` from 127.0.0.1:``port`` as a signed-in EventSource would, on a
    connection kept open for the block; yields the first bytes of the answer, b""
    when the server closed the connection without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\nCookie: sessionid={session}\r\n\r\n".encode()
        )
        yield await asyncio.wait_for(reader.read(4096), EVENT_TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def first_bytes(port: int, path: str, session: str) -> bytes:
    async with raw_stream(port, path, session) as answer:
        return answer


OK = b"HTTP/1.1 200 OK\r\n"


async def session_of(server: LiveServer, username: str) -> str:
    async with logged_in(server, username) as client:
        return client.cookies["sessionid"]


async def test_in_the_gap_a_stream_gets_a_closed_connection_not_a_502(
    servers: Servers, proxy: Callable[..., Nginx], static_root: Path
) -> None:
    (server,) = servers.start(extra_env=PRODUCTION)
    nginx = proxy([server])
    session = await session_of(server, "viewer")
    assert (await first_bytes(nginx.port, "/graph/events/", session)).startswith(OK)

    server.stop()
    # What an EventSource sees as a network error, and so reconnects after.
    assert await first_bytes(nginx.port, "/graph/events/", session) == b""
    async with httpx.AsyncClient(base_url=nginx.url) as client:
        # Pages, which a person reloads, get nginx's error page as usual.
        assert (await client.get("/accounts/login/")).status_code == 502
        # The static files come from STATIC_ROOT, upstream or not.
        script = await client.get("/static/graphapp/stream.js")
    assert script.status_code == 200
    assert script.content == (static_root / "graphapp" / "stream.js").read_bytes()


async def test_a_stream_graphapp_refuses_with_503_gets_a_closed_connection(
    servers: Servers, proxy: Callable[..., Nginx]
) -> None:
    # A full process says 503, as a draining one does: either would stop an
    # EventSource for good.
    (server,) = servers.start(graphapp={"MAX_CONNECTIONS": 1}, extra_env=PRODUCTION)
    nginx = proxy([server])
    session = await session_of(server, "viewer")
    async with raw_stream(server.port, "/graph/events/", session) as held:
        assert held.startswith(OK)
        refused = await first_bytes(server.port, "/graph/events/", session)
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert await first_bytes(nginx.port, "/graph/events/", session) == b""


async def test_a_process_that_refuses_a_stream_hands_it_to_the_next(
    servers: Servers, proxy: Callable[..., Nginx]
) -> None:
    full, free = servers.start(
        2, extra_env=PRODUCTION, each=[{"graphapp": {"MAX_CONNECTIONS": 1}}, {}]
    )
    nginx = proxy([full, free])  # round robin: one of two streams is offered to `full`
    session = await session_of(full, "viewer")
    async with (
        raw_stream(full.port, "/graph/events/", session) as held,
        raw_stream(nginx.port, "/graph/events/", session) as first,
        raw_stream(nginx.port, "/graph/events/", session) as second,
    ):
        answers = [held, first, second]
        assert all(answer.startswith(OK) for answer in answers), answers
        assert [(await health(full))["streams"], (await health(free))["streams"]] == [1, 2]


@pytest.mark.services
async def test_two_upstreams_behind_nginx_share_the_stream(
    servers: Servers, proxy: Callable[..., Nginx]
) -> None:
    a, b = servers.start(2, services_run=True, extra_env=PRODUCTION)
    # Fewest open connections first: the second stream goes to the other process.
    nginx = proxy([a, b], balance="least_conn")
    async with logged_in(a, "editor") as editor:
        streams: list[EventStream] = []
        try:
            for _ in range(2):
                streams.append(EventStream(editor, f"{nginx.url}/graph/events/"))
                await streams[-1].open()
            before = [await events.current() for events in streams]
            assert [(await health(a))["streams"], (await health(b))["streams"]] == [1, 1]
            payload = {"content": "through nginx", "node_type": "FACT", "momentum": 0.9}
            written = await post_json(editor, a, f"{nginx.url}/graph/api/nodes/", payload)
            assert written.status_code == 201, written.text
            # One of the two processes took the write; both streams show it.
            after = await asyncio.gather(*(events.next_stats() for events in streams))
        finally:
            for events in streams:
                await events.close()
    assert [stats["nodes"] for stats in after] == [stats["nodes"] + 1 for stats in before]


@needs_chromium
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_admin_login_through_nginx_on_its_own_port(
    context: BrowserContext, servers: Servers, proxy: Callable[..., Nginx], tls: bool
) -> None:
    trust_proto = {"DJANGO_SECURE_PROXY_SSL_HEADER": "1"} if tls else {}
    (server,) = servers.start(extra_env=PRODUCTION | trust_proto)
    nginx = proxy([server], tls=tls)
    page = await context.new_page()
    await page.goto(f"{nginx.url}/admin/login/?next=/admin/")
    await page.fill("#id_username", "admin")
    await page.fill("#id_password", PASSWORD)
    # The browser sends its Origin (scheme, host and this port): Django's CSRF
    # check compares it with the Host and scheme it was given.
    async with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        await page.click("input[type=submit]")
    answer = await posted.value
    assert answer.request.headers["origin"] == nginx.url
    assert (answer.status, answer.headers.get("location")) == (302, "/admin/")
    await page.wait_for_url(f"{nginx.url}/admin/")
    assert "sessionid" in {cookie["name"] for cookie in await context.cookies()}
    assert await page.locator("#user-tools").count() == 1


async def test_nginx_answers_413_for_a_body_over_djangos_limit_before_reading_it(
    servers: Servers, proxy: Callable[..., Nginx]
) -> None:
    # Plain daphne, which would read any body whole before graphapp sees it.
    (server,) = servers.start(extra_env=PRODUCTION)
    nginx = proxy([server])
    async with connection(nginx.port, API, f"Content-Length: {LIMIT + 1}") as (reader, _):
        api = await until_closed(reader)
    framing = f"Content-Length: {LIMIT + 1}"
    async with connection(nginx.port, "/accounts/login/", framing) as (reader, _):
        page = await until_closed(reader)
    assert too_large(api)  # in JSON, as graphapp says it
    assert page.status == 413
    assert b"nginx" in page.body  # nginx's own page: nothing reached the upstream
    assert too_large(await chunked_over_the_limit(nginx.port, API))
    async with logged_in(server, "editor") as editor:
        await assert_django_judges_a_body_at_the_limit(editor, server, f"{nginx.url}{API}")


async def test_the_documented_https_configuration_through_nginx(
    servers: Servers, proxy: Callable[..., Nginx]
) -> None:
    # docs/deployment.md: nginx ends TLS, graphsite trusts its X-Forwarded-Proto
    # and serves HTTPS only.
    https = {"DJANGO_SECURE_PROXY_SSL_HEADER": "1", "DJANGO_HTTPS": "1"}
    (server,) = servers.start(extra_env=PRODUCTION | https)
    nginx = proxy([server], tls=True)
    async with httpx.AsyncClient(base_url=nginx.url, verify=False, timeout=EVENT_TIMEOUT) as client:
        page = await client.get("/accounts/login/")
        assert page.status_code == 200
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "; secure" in page.headers["Set-Cookie"].lower()  # the CSRF cookie
        answer = await submit_login(client, "admin")
        assert answer.status_code == 302
        session = next(c for c in answer.headers.get_list("Set-Cookie") if "sessionid" in c)
        assert "; secure" in session.lower()
    # Plain HTTP that reaches the server goes to HTTPS first.
    async with httpx.AsyncClient(base_url=server.url, headers={"Host": "127.0.0.1"}) as direct:
        plain = await direct.get("/accounts/login/")
    assert (plain.status_code, plain.headers["Location"]) == (
        301,
        "https://127.0.0.1/accounts/login/",
    )


async def login_through(nginx: Nginx, address: str, password: str, forged: str = "") -> int:
    """The status of one admin login through ``nginx`` from the loopback ``address``
    (``forged``: an X-Forwarded-For of the client's own)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    headers = {"X-Forwarded-For": forged} if forged else {}
    client = httpx.AsyncClient(base_url=nginx.url, transport=transport, headers=headers)
    async with client:
        return (await submit_login(client, "admin", password)).status_code


@pytest.mark.parametrize(("proxies", "bystander"), [("1", 302), ("0", 429)])
async def test_a_login_lockout_behind_nginx_holds_the_clients_address(
    servers: Servers, proxy: Callable[..., Nginx], proxies: str, bystander: int
) -> None:
    # Without DJANGO_PROXY_COUNT every client has nginx's address: an attacker's
    # wrong passwords lock the account for everybody.
    throttle = {"DJANGO_LOGIN_FAILURE_LIMIT": "2", "DJANGO_PROXY_COUNT": proxies}
    (server,) = servers.start(extra_env=PRODUCTION | throttle)
    nginx = proxy([server])

    assert [await login_through(nginx, "127.0.0.2", "wrong") for _ in range(2)] == [200, 429]

    assert await login_through(nginx, "127.0.0.1", PASSWORD) == bystander
    assert await login_through(nginx, "127.0.0.2", PASSWORD) == 429
    assert await login_through(nginx, "127.0.0.2", PASSWORD, forged="10.0.0.9") == 429
