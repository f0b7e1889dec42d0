"""Hostile input to the management commands, each run as ``manage.py`` in a process
of its own with a time limit and a 1 GiB address-space limit.

A refusal is an exit code, one line on stderr and no traceback, and the
database (a SQLite file of the test's own) is exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from graphapp import conf
from tests.live import ROOT

MEMORY = 1 << 30
TIMEOUT = 60  # seconds; a command that blocks (a FIFO) fails the test here
NON_ASCII = "naïve ✓ 日本語"


# Set in the child and exec'd into manage.py: a preexec_fn would run Python
# between fork and exec, unsafe while this process has threads (the publisher's).
LIMITED = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY}, {MEMORY})); "
    "os.execv(sys.executable, [sys.executable, 'manage.py', *sys.argv[1:]])"
)


@dataclass
class Site:
    """A migrated graphsite database in a file, and how to run commands on it."""

    database: Path
    graphapp: dict[str, Any] = field(default_factory=dict)

    def manage(
        self, *args: str, stdin: IO[bytes] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LIMITED, *args],
            cwd=ROOT,
            env=self.env() | (env or {}),
            stdin=stdin or subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        return inherited | {
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "DATABASE_URL": f"sqlite:///{self.database}",
            "GRAPHAPP_JSON": json.dumps(self.graphapp),
            "PYTHONPATH": str(ROOT),
        }

    def rows(self) -> list[str]:
        """Every row of every table, as SQL."""
        with closing(sqlite3.connect(self.database)) as db:
            return list(db.iterdump())


def graph_file(nodes: int = 2) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": i,
                "content": f"{NON_ASCII} {i}",
                "node_type": "FACT",
                "momentum": 0.5,
                "created_at": 1_700_000_000.0,
                "last_accessed": 1_700_000_000.0,
            }
            for i in range(nodes)
        ],
        "edges": [],
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with users, a few seeded nodes and edges and non-ASCII content."""
    site = Site(tmp_path_factory.mktemp("commands") / "db.sqlite3")
    subprocess.run(
        [sys.executable, "-m", "tests.site_setup"], cwd=ROOT, env=site.env(), check=True
    )
    seeded = site.manage("graph_seed", "--nodes", "6", "--edges", "9", "--seed", "1")
    assert seeded.returncode == 0, seeded.stderr
    document = site.database.with_name("first.json")
    document.write_text(json.dumps(graph_file()), encoding="utf-8")
    imported = site.manage("graph_import", str(document))
    assert imported.returncode == 0, imported.stderr
    return site.database


@pytest.fixture
def site(prepared: Path, tmp_path: Path) -> Site:
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(prepared, database)
    return Site(database)


def refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The one line a refusing command wrote, after checking it and the exit code."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def assert_refused_unchanged(site: Site, code: int, args: list[str], *words: str) -> str:
    before = site.rows()
    line = refused(site.manage(*args), code, *words)
    assert site.rows() == before
    return line


# -- graph_import: what it reads ----------------------------------------------------


def fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def unix_socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # the file stays after the socket closes
    listener.close()
    return path


SPECIAL_FILES: list[tuple[Callable[[Path], Path], str]] = [
    (lambda _: Path("/dev/zero"), "a character device"),
    (fifo, "a FIFO"),
    (lambda tmp_path: tmp_path, "a directory"),
    (unix_socket, "a socket"),
]


@pytest.mark.parametrize(("make", "kind"), SPECIAL_FILES, ids=["zero", "fifo", "dir", "socket"])
def test_import_refuses_what_is_not_a_regular_file(
    site: Site, tmp_path: Path, make: Callable[[Path], Path], kind: str
) -> None:
    path = make(tmp_path)
    line = assert_refused_unchanged(site, 1, ["graph_import", str(path)], kind)
    assert line == (
        f"CommandError: Cannot read {path}: {kind}, not a regular file; nothing was imported."
    )


def padded(tmp_path: Path, size: int) -> Path:
    """A valid graph file of exactly ``size`` bytes (JSON with trailing blanks)."""
    text = json.dumps(graph_file(3)).encode()
    path = tmp_path / "graph.json"
    path.write_bytes(text + b" " * (size - len(text)))
    return path


def test_import_reads_a_file_of_exactly_the_limit(site: Site, tmp_path: Path) -> None:
    path = padded(tmp_path, 4096)
    result = site.manage("graph_import", "--max-bytes", "4096", str(path))
    assert result.returncode == 0, result.stderr
    assert "Imported 3 nodes and 0 edges." in result.stdout


def test_import_refuses_a_file_one_byte_over_the_limit(site: Site, tmp_path: Path) -> None:
    path = padded(tmp_path, 4097)
    assert_refused_unchanged(
        site,
        1,
        ["graph_import", "--max-bytes", "4096", str(path)],
        "4,097 bytes, over the limit of 4,096 bytes (--max-bytes",
        "nothing was imported",
    )


def test_import_refuses_a_file_over_the_default_limit_without_reading_it(
    site: Site, tmp_path: Path
) -> None:
    limit = conf.DEFAULTS["MAX_IMPORT_BYTES"]
    path = tmp_path / "sparse.json"
    with path.open("wb") as sparse:  # no disk used: the size alone must refuse it
        sparse.truncate(limit + 1)
    assert_refused_unchanged(
        site, 1, ["graph_import", str(path)], f"{limit + 1:,} bytes, over the limit of {limit:,}"
    )


def test_import_takes_its_limit_from_the_setting(site: Site, tmp_path: Path) -> None:
    site.graphapp = {"MAX_IMPORT_BYTES": 4096}
    assert_refused_unchanged(
        site, 1, ["graph_import", str(padded(tmp_path, 4097))], "over the limit of 4,096 bytes"
    )


def test_import_stops_at_the_limit_when_the_file_holds_more_than_it_says(site: Site) -> None:
    # /proc files say they are empty; reading this one gives the command's own
    # memory map, far more than 64 bytes.
    assert_refused_unchanged(
        site,
        1,
        ["graph_import", "--max-bytes", "64", "/proc/self/maps"],
        "Cannot read /proc/self/maps: over the limit of 64 bytes",
    )


def test_import_from_endless_standard_input_stops_at_the_limit(site: Site) -> None:
    before = site.rows()
    with open("/dev/zero", "rb") as zeros:
        result = site.manage("graph_import", "--max-bytes", "1000000", "-", stdin=zeros)
    refused(result, 1, "Cannot read standard input: over the limit of 1,000,000 bytes")
    assert site.rows() == before


def test_import_from_standard_input(site: Site, tmp_path: Path) -> None:
    with padded(tmp_path, 1000).open("rb") as graph:
        result = site.manage("graph_import", "-", stdin=graph)
    assert result.returncode == 0, result.stderr
    assert "Imported 3 nodes" in result.stdout


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not JSON"),
        (b"[]", "expected a JSON object with nodes and edges, got a list"),
        (b'"nodes"', "expected a JSON object with nodes and edges, got a string"),
        (b'{"nodes": {}}', "file.nodes: expected a list"),
        (b'{"nodes": [[]]}', "nodes[0]: expected an object"),
        (b"[" * 200_000 + b"]" * 200_000, "not JSON: nested too deeply"),
        ('{"nodes": [{"content": "café"}]}'.encode("latin-1"), "not JSON: 'utf-8' codec"),
        (b'{"nodes": [1' + b"0" * 5000 + b"]}", "not JSON"),  # more digits than Python reads
        (b'{"nodes": [], "edges": [], "nodes": []}', "field 'nodes' is given more than once"),
    ],
    ids=["empty", "list", "string", "nodes", "record", "deep", "latin1", "digits", "repeated"],
)
def test_import_of_a_file_that_is_not_a_graph(
    site: Site, tmp_path: Path, data: bytes, words: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    line = assert_refused_unchanged(site, 1, ["graph_import", str(path)], words)
    assert line.startswith(f"CommandError: {path}: ")
    assert line.endswith("; nothing was imported.")


def test_import_of_a_missing_file(site: Site, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert_refused_unchanged(
        site, 1, ["graph_import", str(missing)], f"Cannot read {missing}: No such file"
    )


# -- graph_export: what it writes ---------------------------------------------------


def inside_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain").write_text("x")
    return tmp_path / "plain" / "out.json"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda _: Path("/dev/full"), "a character device, not a regular file"),
        (fifo, "a FIFO, not a regular file"),
        (lambda tmp_path: tmp_path, "a directory, not a regular file"),
        (inside_a_file, "Not a directory"),
        (lambda tmp_path: tmp_path / "missing" / "out.json", "No such file or directory"),
    ],
    ids=["full", "fifo", "dir", "inside-a-file", "missing-dir"],
)
def test_export_refuses_what_it_cannot_write(
    site: Site, tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    target = make(tmp_path)
    line = assert_refused_unchanged(site, 1, ["graph_export", str(target)], words)
    assert line.startswith(f"CommandError: Cannot write {target}: ")


def test_export_replaces_a_longer_file_whole(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("x" * 1_000_000)
    result = site.manage("graph_export", str(target))
    assert result.returncode == 0, result.stderr
    exported = json.loads(target.read_text(encoding="utf-8"))
    assert len(exported["nodes"]) == 8
    assert NON_ASCII in target.read_text(encoding="utf-8")  # the file is UTF-8


def test_export_to_standard_output_in_any_encoding(site: Site) -> None:
    result = site.manage("graph_export", "-", env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    contents = [node["content"] for node in json.loads(result.stdout)["nodes"]]
    assert f"{NON_ASCII} 0" in contents


# -- numbers ------------------------------------------------------------------------

NUMBER_OPTIONS = [
    ("graph_decay", "--hours"),
    ("graph_prune", "--below"),
    ("graph_seed", "--nodes"),
    ("graph_seed", "--edges"),
    ("graph_seed", "--seed"),
    ("graph_stats", "--indent"),
    ("graph_import", "--max-bytes"),
]
BAD_NUMBERS = ["-1", "nan", "inf", "1e12", "many"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize(("command", "option"), NUMBER_OPTIONS, ids=" ".join)
def test_a_bad_number_is_one_line_and_changes_nothing(
    site: Site, command: str, option: str, value: str
) -> None:
    file = ["graph.json"] if command == "graph_import" else []
    line = assert_refused_unchanged(site, 2, [command, f"{option}={value}", *file])
    assert line.startswith(f"manage.py {command}: error: argument {option}: must be ")
    assert line.endswith(f", not {value!r} (see --help)")


@pytest.mark.parametrize(
    "args",
    [
        ["graph_seed", "--nodes", "100000000000"],
        ["graph_seed", "--nodes", "9" * 5000],
        ["graph_seed", "--nodes", "10", "--edges", "100000000000"],
        ["graph_decay", "--hours", "8761"],
        ["graph_import", "--max-bytes", "0", "graph.json"],
    ],
    ids=["nodes", "digits", "edges", "hours", "max-bytes"],
)
def test_a_number_out_of_range_is_one_line_and_changes_nothing(
    site: Site, args: list[str]
) -> None:
    line = assert_refused_unchanged(site, 2, args, "must be a", "(see --help)")
    assert len(line) < 200  # a long argument is not echoed whole


def test_more_edges_than_the_nodes_allow_is_one_line(site: Site) -> None:
    assert_refused_unchanged(
        site, 1, ["graph_seed", "--nodes", "3", "--edges", "7"], "3 nodes allow at most 6 edges"
    )


@pytest.mark.parametrize("args", [["-v", "9"], ["--bogus"]], ids=["verbosity", "unknown"])
def test_bootstrap_admin_bad_arguments_are_one_line(site: Site, args: list[str]) -> None:
    assert_refused_unchanged(site, 2, ["bootstrap_admin", *args], "manage.py bootstrap_admin")


# -- the database -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["graph_stats"], ["bootstrap_admin"], ["graph_decay", "--hours", "1"], ["graph_export", "-"]],
    ids=lambda args: args[0],
)
def test_an_unmigrated_database_is_one_line(tmp_path: Path, args: list[str]) -> None:
    site = Site(tmp_path / "empty.sqlite3")
    refused(site.manage(*args), 1, "CommandError: the database failed: OperationalError")
