"""Processes the benchmark starts: servers, client processes, Redis, scratch databases.

Every child is started with ``PR_SET_PDEATHSIG`` (it gets SIGTERM when the
harness dies, however it dies) and stopped by the harness in ``finally``, so a
run leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.site import PASSWORD, VIEWERS

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
HOST = "127.0.0.1"


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, preexec_fn=_die_with_parent, **kwargs)


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def site_env(database_url: str, redis_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env |= {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        "GRAPHAPP_LOG_LEVEL": "WARNING",
        **extra,
    }
    if redis_url:
        env |= {"REDIS_URL": redis_url, "REDIS_PREFIX": "bench"}
    return env


def prepare_site(env: dict[str, str], nodes: int = 1000) -> None:
    """Migrate, create the users and seed ``nodes`` nodes (3 edges each)."""
    subprocess.run([sys.executable, "-m", "bench.site", str(nodes)], cwd=ROOT, env=env, check=True)


@dataclass
class Server:
    """The benchmark site under daphne or uvicorn, one process (``graphapp.daphne``:
    daphne with graphapp's bound on request bodies)."""

    kind: str
    env: dict[str, str]
    log: Path
    application: str = "bench.asgi:application"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _ps: psutil.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            if self.kind in {"daphne", "graphapp.daphne"}:
                # Pre-bound with a deep backlog: daphne's own listen() uses 50,
                # and thousands of connects at once would see SYNs dropped.
                listener = socket.socket()
                listener.bind((HOST, 0))
                listener.listen(4096)
                self.port = listener.getsockname()[1]
                self.process = spawn(
                    [
                        sys.executable,
                        "-m",
                        self.kind,
                        "-v",
                        "0",
                        "--fd",
                        str(listener.fileno()),
                        self.application,
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[listener.fileno()],
                )
                listener.close()
            else:
                self.port = free_port()
                self.process = spawn(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        self.application,
                        "--host",
                        HOST,
                        "--port",
                        str(self.port),
                        "--backlog",
                        "4096",
                        "--lifespan",
                        "off",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        self._ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/accounts/login/", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} did not answer within 60 s")

    def stop(self) -> None:
        stop(self.process)

    def rss(self) -> int:
        assert self._ps is not None
        return int(self._ps.memory_info().rss)

    def cpu(self) -> float:
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)


@dataclass
class Session:
    """A logged-in session of one user, made through the login form."""

    cookie: str
    csrf: str


def login(server: Server, username: str) -> Session:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/accounts/login/").raise_for_status()
        answer = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{server.url}/accounts/login/"},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"login of {username} failed: {answer.status_code}")
        return Session(
            f"sessionid={client.cookies['sessionid']}; csrftoken={client.cookies['csrftoken']}",
            client.cookies["csrftoken"],
        )


def viewer_cookies(server: Server) -> list[str]:
    return [login(server, f"viewer{index}").cookie for index in range(VIEWERS)]


class Editor:
    """Saves token nodes through the JSON API and reads their commit times."""

    def __init__(self, server: Server) -> None:
        self.server = server
        session = login(server, "editor")
        self.client = httpx.Client(
            base_url=server.url,
            timeout=60,
            headers={
                "Cookie": session.cookie,
                "X-CSRFToken": session.csrf,
                "Referer": f"{server.url}/",
                "Content-Type": "application/json",
            },
        )

    def save_node(self) -> str:
        token = f"bench-token:{uuid.uuid4().hex}"
        answer = self.client.post(
            "/graph/api/nodes/",
            content=json.dumps({"content": token, "node_type": "FACT", "momentum": 0.5}),
        )
        if answer.status_code != 201:
            raise RuntimeError(f"save failed: {answer.status_code} {answer.text[:200]}")
        return token

    def commit_time(self, token: str) -> float:
        at = self.client.get("/bench/commit/", params={"token": token}).json()["at"]
        if at is None:
            raise RuntimeError(f"no commit time for {token}")
        return float(at)

    def publish(self, target: str) -> float:
        answer = self.client.post(f"/bench/publish/{target}/")
        answer.raise_for_status()
        return float(answer.json()["at"])

    def post(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.client.post(path, params=params, timeout=300)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get(path).json()
        return result

    def close(self) -> None:
        self.client.close()


class ClientProcess:
    """``bench.clients`` in its own process, driven over its standard streams."""

    def __init__(self, log: Path) -> None:
        self.process = spawn(
            [sys.executable, "-m", "bench.clients"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115
        )
        self._ps = psutil.Process(self.process.pid)
        self.cpu = 0.0

    def call(self, command: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"clients did not answer {command['cmd']} within {timeout} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the client process exited")
        answer: dict[str, Any] = json.loads(line)
        self.cpu = float(answer["cpu"])
        return answer

    def open(
        self, server: Server, path: str, n: int, cookies: list[str], concurrency: int = 100
    ) -> dict[str, Any]:
        return self.call(
            {
                "cmd": "open",
                "host": HOST,
                "port": server.port,
                "path": path,
                "n": n,
                "cookies": cookies,
                "concurrency": concurrency,
            }
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ValueError):
            self.call({"cmd": "close"}, timeout=30)
        stop(self.process)


@dataclass
class Redis:
    """A redis-server of our own on a free port: its command counters are ours alone."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.port = free_port()
        self.process = spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.command("PING").startswith("+PONG"):
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def command(self, *words: str) -> str:
        parts = [f"*{len(words)}\r\n"] + [f"${len(w.encode())}\r\n{w}\r\n" for w in words]
        with socket.create_connection((HOST, self.port), timeout=5) as conn:
            conn.sendall("".join(parts).encode())
            data = b""
            while True:
                chunk = conn.recv(65536)
                data += chunk
                if not chunk or self._complete(data):
                    return data.decode()

    @staticmethod
    def _complete(data: bytes) -> bool:
        if data.startswith(b"$"):
            header, _, rest = data.partition(b"\r\n")
            return len(rest) >= int(header[1:]) + 2
        return data.endswith(b"\r\n")

    def commandstats(self) -> dict[str, int]:
        """Calls per command so far (INFO commandstats)."""
        calls: dict[str, int] = {}
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, values = line.partition(":")
                fields = dict(item.split("=", 1) for item in values.split(","))
                calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
        return calls

    def stop(self) -> None:
        stop(self.process)


@contextlib.contextmanager
def postgres_database(label: str) -> Iterator[str]:
    """A scratch PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"bench_{label}_{os.getpid()}"
    admin = ["psql", f"{PG_URL}/postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{name}"'], check=True, capture_output=True)
    subprocess.run([*admin, f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    try:
        yield f"{PG_URL}/{name}"
    finally:
        subprocess.run(
            [*admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            check=False,
            capture_output=True,
        )


def postgres_available() -> bool:
    return (
        shutil.which("psql") is not None
        and subprocess.run(
            ["psql", f"{PG_URL}/postgres", "-Atc", "SELECT 1"], capture_output=True, check=False
        ).returncode
        == 0
    )


@dataclass
class Workdir:
    path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="graphapp-bench-")))

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.path / name}"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
