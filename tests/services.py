"""PostgreSQL and Redis for the tests that are about them.

``GRAPHAPP_SERVICES=1`` runs the suite on PostgreSQL and Redis
(``TEST_DATABASE_URL``, ``TEST_REDIS_URL``). Where they cannot be reached that
run is skipped with a message, unless ``GRAPHAPP_REQUIRE_SERVICES=1`` (CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def enabled() -> bool:
    return os.environ.get("GRAPHAPP_SERVICES") == "1"


def required() -> bool:
    return os.environ.get("GRAPHAPP_REQUIRE_SERVICES") == "1"


def unreachable() -> str:
    """Why PostgreSQL or Redis cannot be used, or "" when both answer."""
    problems = []
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {DATABASE_URL}: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {REDIS_URL}: {exc}")
    return "; ".join(problems)


def database_url(name: str) -> str:
    parts = urlsplit(DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test server; dropped afterwards."""
    name = f"graphapp_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may stop."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                client.ping()
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a stopped process would never act on the SIGTERM
            self.process.terminate()
            self.process.wait(10)

    def _signal(self, number: signal.Signals) -> None:
        assert self.process is not None, "redis-server never started"
        assert self.process.poll() is None, "redis-server not running"
        self.process.send_signal(number)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open and nothing answers,
        as with a hung host."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker go on (SIGCONT); what it held is still there."""
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """End the broker at once (SIGKILL): connections reset, nothing saved."""
        self._signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def restart_empty(self) -> None:
        """A new redis-server on the same port, holding nothing (no groups, no
        messages): what a broker restarted without persistence gives."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.start()
