"""Cross-origin reads (CORS_ORIGINS) against real servers: preflights through
daphne and uvicorn, and an EventSource opened withCredentials by a page of
another origin in Chromium, refused to an origin not listed."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, logged_in
from tests.services import free_port
from tests.test_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.e2e

ALLOWED = "http://localhost:{port}"

PAGE = b"""<!doctype html><meta charset="utf-8"><title>another site</title>
<script>
  window.stats = [];
  window.failed = false;
  window.openStream = (url) => {
    const source = new EventSource(url, {withCredentials: true});
    window.source = source;
    source.addEventListener("stats", (e) => window.stats.push(JSON.parse(e.data)));
    source.onerror = () => { window.failed = true; };
  };
</script>"""


@contextlib.contextmanager
def static_site(port: int) -> Iterator[None]:
    """A page of another origin: http://localhost:``port``/."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        site.shutdown()
        site.server_close()


def preflight(server: LiveServer, path: str, origin: str, method: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "last-event-id, content-type, x-csrftoken",
    }
    return httpx.options(f"{server.url}{path}", headers=headers, timeout=10)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_preflights_are_answered_for_the_listed_origins_only(
    make_server: Any, kind: str, stream_application: str
) -> None:
    origin = "https://app.example.com"
    server = make_server(
        server=kind, graphapp={"CORS_ORIGINS": [origin]}, application=stream_application
    )
    for path, method in (("/graph/events/", "GET"), ("/graph/api/nodes/", "POST")):
        answer = preflight(server, path, origin, method)
        assert answer.status_code == 204, path
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert method in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert {"last-event-id", "content-type", "x-csrftoken"} <= {
            header.strip() for header in allowed.split(",")
        }
        assert "Origin" in answer.headers["vary"]

        refused = preflight(server, path, "https://evil.example.com", method)
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert refused.headers["content-type"] == "application/json"
    async with logged_in(server, "viewer") as viewer:
        answer = await viewer.get("/graph/api/stats/", headers={"Origin": origin})
        assert answer.headers["access-control-allow-origin"] == origin
        assert "Origin" in answer.headers["vary"]
        other = await viewer.get(
            "/graph/api/stats/", headers={"Origin": "https://evil.example.com"}
        )
        assert other.status_code == 200  # same-origin rules are the browser's to apply
        assert "access-control-allow-origin" not in other.headers


async def test_a_page_of_a_listed_origin_reads_the_stream_with_credentials(
    make_server: Any, stream_application: str
) -> None:
    from playwright.async_api import async_playwright

    allowed_port, other_port = free_port(), free_port()
    server = make_server(
        graphapp={
            "CORS_ORIGINS": [ALLOWED.format(port=allowed_port)],
            # localhost and 127.0.0.1 are different sites: the browser sends no
            # SameSite=Lax session cookie across, so the page opens the stream
            # with a token in the URL (what EventSource can send).
            "TOKEN_IN_QUERY": True,
        },
        application=stream_application,
    )
    async with logged_in(server, "viewer") as viewer:
        issued = await viewer.post(
            "/graph/api/token/",
            headers={"X-CSRFToken": viewer.cookies["csrftoken"], "Referer": f"{server.url}/"},
        )
        token = issued.json()["token"]
    url = f"{server.url}/graph/events/?token={token}"
    with static_site(allowed_port), static_site(other_port):
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(ALLOWED.format(port=allowed_port) + "/")
                await page.evaluate("url => window.openStream(url)", url)
                await page.wait_for_function("window.stats.length > 0", timeout=10_000)
                first = await page.evaluate("window.stats[0]")
                assert first["nodes"] == 0

                refused = await browser.new_page()
                await refused.goto(f"http://localhost:{other_port}/")
                await refused.evaluate("url => window.openStream(url)", url)
                await refused.wait_for_function("window.failed", timeout=10_000)
                # A CORS failure closes the EventSource for good, with nothing read.
                assert await refused.evaluate("window.source.readyState") == 2
                assert await refused.evaluate("window.stats.length") == 0
            finally:
                await browser.close()
