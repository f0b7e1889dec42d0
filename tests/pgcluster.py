"""A PostgreSQL cluster of a test's own, which the test may stop and start.

The shared PostgreSQL (tests/services.py) is never stopped: a test about an
outage makes its own cluster with the machine's binaries
(``/usr/lib/postgresql/*/bin``), in a temporary directory, listening on
127.0.0.1 on a free port with its socket in that directory. initdb refuses to
run as root, so as root every command runs as the ``postgres`` user, who owns
the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from tests.services import free_port

StopMode = Literal["smart", "fast", "immediate"]


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _as_owner() -> list[str]:
    """The prefix that runs a command as the cluster's owner (postgres, when we are root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresCluster:
    """One cluster: ``init()`` once, then ``start()`` and ``stop()`` at will.

    Trust authentication for ``postgres`` over TCP on 127.0.0.1 only; fsync off
    (nothing here must survive a crash of the machine), commits kept through a
    crash of the server (``stop("immediate")``).
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="graphapp-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [*_as_owner(), str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if result.returncode:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log()}"
            )

    def init(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self.datadir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "start", "--pgdata", str(self.datadir), "--log", str(self.logfile),
            "--options", options, "--wait", "--timeout", "30",
        )  # fmt: skip

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop it: ``fast`` ends every session (they see "terminating connection
        due to administrator command"), ``immediate`` kills them (crash recovery
        at the next start)."""
        self._run(
            "pg_ctl", "stop", "--pgdata", str(self.datadir), "--mode", mode,
            "--wait", "--timeout", "30",
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """A new database; its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.logfile.read_text(errors="replace")[-4000:]
        return ""

    def remove(self) -> None:
        """Stop it if it runs and delete its directory."""
        if self.running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started cluster of the caller's own, removed afterwards."""
    bindir = binaries()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    cluster = PostgresCluster(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
