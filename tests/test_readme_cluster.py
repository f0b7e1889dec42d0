"""The README's "Several server processes behind one address", followed step by step."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import services
from tests.live import ROOT, stream

pytestmark = [pytest.mark.e2e, pytest.mark.services]

BIN = Path(sys.executable).parent


@pytest.fixture
def cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    broker = services.RedisServer(tmp_path)
    broker.start()
    with services.scratch_database() as database_url:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env |= {
            "DATABASE_URL": database_url,
            "REDIS_URL": broker.url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
        }
        try:
            yield env
        finally:
            broker.stop()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def login(url: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=10)
    await client.get("/accounts/login/")
    answer = await client.post(
        "/accounts/login/",
        data={
            "username": "admin",
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{url}/accounts/login/"},
    )
    assert answer.status_code == 302, answer.text[:500]
    return client


@pytest.fixture
def cluster(cluster_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The README's commands, in order; the only change is a free port for 8000."""
    manage(cluster_env, "migrate", "--noinput")
    created = manage(cluster_env, "bootstrap_admin")
    manage(cluster_env, "collectstatic", "--noinput")
    password = re.search(r"password: (\S+)", created)
    assert password is not None, created
    port = services.free_port()
    server = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            "graphsite.asgi:application",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=cluster_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/accounts/login/").status_code == 200:
                    break
            time.sleep(0.1)
        yield url, password[1]
    finally:
        server.terminate()
        server.wait(10)


async def test_two_uvicorn_workers_on_one_port_share_every_update(
    cluster: tuple[str, str],
) -> None:
    url, password = cluster
    clients: list[httpx.AsyncClient] = []
    try:
        pids: set[int] = set()
        for _ in range(60):  # each new connection lands on one worker or the other
            client = await login(url, password)
            clients.append(client)
            pids.add((await client.get("/graph/api/health/")).json()["pid"])
            if len(pids) == 2 and len(clients) >= 10:
                break
        assert len(pids) == 2, "two processes serve the one address"
        async with contextlib.AsyncExitStack() as streams:
            opened = [await streams.enter_async_context(stream(c)) for c in clients]
            now = (await clients[0].get("/graph/api/stats/")).json()
            await asyncio.gather(*(events.current(now) for events in opened))
            answer = await clients[0].post(
                "/graph/api/nodes/",
                json={"content": "to every worker", "node_type": "FACT"},
                headers={"X-CSRFToken": clients[0].cookies["csrftoken"], "Referer": f"{url}/"},
            )
            assert answer.status_code == 201, answer.text
            received = await asyncio.gather(*(events.next_stats() for events in opened))
        assert {event["nodes"] for event in received} == {now["nodes"] + 1}
    finally:
        for client in clients:
            await client.aclose()
