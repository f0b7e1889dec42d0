"""The package as it is released, and the README's "Add graphapp to your project".

``python -m build`` makes an sdist and a wheel from it, out of a copy of this
checkout: both carry the LICENSE and ``graphapp.__version__``, the sdist leaves
the tests out (they run from the repository), the ``redis`` extra resolves to a
redis-py below 8, and ``twine check`` passes.

Then the README, line by line: the wheel is built from a copy of this checkout
and installed into a fresh virtual environment; a brand-new project made by
``django-admin startproject`` gets the README's settings and URLs, is migrated
and checked, and serves under daphne's ``runserver``; a save through the JSON
API and one from the project's own ``manage.py shell`` reach an open event stream.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import graphapp
from tests import services
from tests.live import EVENT_TIMEOUT, ROOT, EventStream, stream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        services.enabled(),
        reason="runs in the embedded run: the new project has its own SQLite and in-memory layer",
    ),
]

SECTION = "## Add graphapp to your project"
CHECKOUT = "path/to/graphapp"  # the README's name for a checkout of this repository
PASSWORD = "correct-horse-battery-staple"
# What the new environment gets besides the wheel: the versions this suite runs on.
PINNED = ("Django", "channels", "daphne")
# A copy of the checkout without what is local to it.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    "db.sqlite3", "staticfiles",
)  # fmt: skip


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block of the section, in order."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    return re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


@dataclass
class NewProject:
    """A shell that runs the README's commands in a fresh virtual environment."""

    root: Path  # where the commands start: the folder that holds the new project
    checkout: Path
    environment: Path
    cwd: Path = field(init=False)
    outputs: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self.cwd = self.root

    @property
    def bin(self) -> Path:
        return self.environment / "bin"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "runserver.log"

    def env(self) -> dict[str, str]:
        # Nothing of this suite's own settings leaks into the new project.
        local = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in local and not key.startswith(("GRAPHAPP_", "PYTEST_"))
            and key not in {"DATABASE_URL", "REDIS_URL"}
        }  # fmt: skip
        constraints = self.root / "constraints.txt"
        constraints.write_text(
            "".join(f"{name}=={importlib.metadata.version(name)}\n" for name in PINNED)
        )
        env |= {
            "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.environment),
            "PIP_CONSTRAINT": str(constraints),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        }
        return env

    def argv(self, line: str) -> list[str]:
        words = [word.replace(CHECKOUT, str(self.checkout)) for word in shlex.split(line)]
        program = shutil.which(words[0], path=str(self.bin))
        assert program, f"{words[0]!r} (README: {line!r}) is not in the new environment"
        return [program, *words[1:]]

    def run_line(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        if not words:
            return
        assert self.server is None, f"README: {line!r} comes after the server started"
        if words[0] == "cd":
            self.cwd = self.cwd / words[1]
            return
        argv = self.argv(line)
        if words[-1] == "createsuperuser":
            argv.append("--noinput")  # the password from DJANGO_SUPERUSER_PASSWORD
        if words[-1] == "runserver":
            self.start_server(argv)
            return
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env(), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"README: {line!r} failed:\n{done.stdout}\n{done.stderr}"
        self.outputs[line] = done.stdout + done.stderr

    def append(self, text: str) -> None:
        """A Python block whose first line names the file it goes at the end of."""
        header = re.match(r"# (\S+) \(add at the end\)\n", text)
        assert header, f"README: a Python block without '# FILE (add at the end)':\n{text}"
        target = self.cwd / header[1]
        assert target.is_file(), f"README: {header[1]} does not exist in {self.cwd}"
        with target.open("a") as file:
            file.write("\n" + text)

    def start_server(self, argv: list[str]) -> None:
        self.port = services.free_port()
        with self.log_path.open("ab") as log:
            self.server = subprocess.Popen(
                [*argv, f"127.0.0.1:{self.port}"],
                cwd=self.cwd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # runserver's reloader and its child stop together
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.server.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/admin/login/", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"runserver did not answer within 60 s:\n{self.log()}")

    def stop(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / "python"), "manage.py", *args],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NewProject]:
    """The README's steps, done: a new project served by daphne's runserver."""
    base = tmp_path_factory.mktemp("packaging")
    checkout = base / "graphapp"
    shutil.copytree(ROOT, checkout, ignore=NOT_SOURCE)
    (base / "projects").mkdir()
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    new = NewProject(base / "projects", checkout, base / "venv")
    try:
        for language, text in readme_blocks():
            if language == "sh":
                for line in text.splitlines():
                    new.run_line(line)
            else:
                assert language == "python", f"README: a {language} block in {SECTION!r}"
                new.append(text)
        assert new.server is not None, "the README's steps end with a running server"
        yield new
    finally:
        new.stop()


def wheel_of(project: NewProject) -> Path:
    wheels = list((project.checkout / "dist").glob("graphapp-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def package_data() -> set[str]:
    """The package's files a wheel must hold besides its modules."""
    package = ROOT / "graphapp"
    expected = {
        path.relative_to(ROOT).as_posix()
        for folder in ("templates", "static", "locale", "migrations")
        for path in (package / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    } | {"graphapp/py.typed"}
    assert {name for name in expected if name.endswith(".html")}, "no template found"
    assert {name for name in expected if name.endswith(".js")}, "no static file found"
    assert "graphapp/migrations/0001_initial.py" in expected
    assert "graphapp/locale/de/LC_MESSAGES/djangojs.mo" in expected
    return expected


def test_wheel_holds_templates_static_files_translations_migrations_and_py_typed(
    project: NewProject,
) -> None:
    with zipfile.ZipFile(wheel_of(project)) as wheel:
        names = set(wheel.namelist())
    assert package_data() - names == set()


@dataclass
class Distributions:
    """What ``python -m build`` made: the sdist, and the wheel it built from that sdist."""

    sdist: Path
    wheel: Path

    @property
    def version(self) -> str:
        return graphapp.__version__

    def sdist_names(self) -> set[str]:
        with tarfile.open(self.sdist) as archive:
            return set(archive.getnames())

    def sdist_file(self, name: str) -> bytes:
        with tarfile.open(self.sdist) as archive:
            member = archive.extractfile(f"graphapp-{self.version}/{name}")
            assert member is not None, name
            return member.read()

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())

    def wheel_file(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(f"graphapp-{self.version}.dist-info/{name}")

    def metadata(self) -> list[Message]:
        """The core metadata of each: the sdist's PKG-INFO, the wheel's METADATA."""
        texts = (self.sdist_file("PKG-INFO"), self.wheel_file("METADATA"))
        return [Parser().parsestr(text.decode()) for text in texts]


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    base = tmp_path_factory.mktemp("build")
    checkout = base / "graphapp"
    shutil.copytree(ROOT, checkout, ignore=NOT_SOURCE)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(base / "dist"), str(checkout)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [sdist] = (base / "dist").glob("*.tar.gz")
    [wheel] = (base / "dist").glob("*.whl")
    return Distributions(sdist, wheel)


def test_sdist_and_wheel_carry_the_license(distributions: Distributions) -> None:
    license_text = (ROOT / "LICENSE").read_bytes()
    assert b"MIT License" in license_text
    assert distributions.sdist_file("LICENSE") == license_text
    assert distributions.wheel_file("licenses/LICENSE") == license_text
    for metadata in distributions.metadata():
        assert metadata["License-Expression"] == "MIT"
        assert metadata.get_all("License-File") == ["LICENSE"]


def test_sdist_and_wheel_carry_graphapps_version(distributions: Distributions) -> None:
    version = graphapp.__version__
    assert distributions.sdist.name == f"graphapp-{version}.tar.gz"
    assert distributions.wheel.name == f"graphapp-{version}-py3-none-any.whl"
    assert [metadata["Version"] for metadata in distributions.metadata()] == [version, version]


def requirements(metadata: Message, extra: str | None = None) -> dict[str, Requirement]:
    """The Requires-Dist entries without a marker, or those only ``extra`` brings."""
    found: dict[str, Requirement] = {}
    for text in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if extra is None:
            applies = marker is None
        else:
            applies = marker is not None and marker.evaluate({"extra": extra})
        if applies:
            found[canonicalize_name(requirement.name)] = requirement
    return found


def test_the_redis_extra_keeps_redis_py_below_8(distributions: Distributions) -> None:
    for metadata in distributions.metadata():
        extra = requirements(metadata, "redis")
        assert set(extra) == {"channels-redis", "redis"}
        assert extra["redis"].specifier.contains("7.4.1")
        assert not extra["redis"].specifier.contains("8.0.0")


def test_the_dependencies_start_at_their_security_releases(distributions: Distributions) -> None:
    for metadata in distributions.metadata():
        needs = requirements(metadata)
        assert set(needs) == {"asgiref", "django", "channels", "daphne"}
        assert not needs["daphne"].specifier.contains("4.2.1")  # CVE-2026-44545, -44546
        assert needs["daphne"].specifier.contains("4.2.2")
        assert not needs["django"].specifier.contains("5.2.18")
        assert needs["django"].specifier.contains("5.2.19")


def test_pip_resolves_the_redis_extra_to_a_redis_py_below_8(
    distributions: Distributions,
) -> None:
    # What `pip install "graphapp[redis]"` would install, resolved afresh from the index.
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--quiet", "--report", "-", f"{distributions.wheel}[redis]",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    versions: dict[str, str] = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(done.stdout)["install"]
    }
    assert "channels-redis" in versions, versions
    assert int(versions["redis"].split(".")[0]) < 8, versions


def test_the_sdist_leaves_the_tests_out_and_builds_the_whole_wheel(
    distributions: Distributions,
) -> None:
    root = f"graphapp-{distributions.version}"
    names = distributions.sdist_names()
    assert f"{root}/graphapp/__init__.py" in names
    assert not {name for name in names if name.startswith(f"{root}/tests")}
    # `build` made the wheel from the sdist: nothing the package needs is missing from it.
    assert package_data() - distributions.wheel_names() == set()


def test_twine_check_passes(distributions: Distributions) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "twine", "check", "--strict",
            str(distributions.sdist), str(distributions.wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_names_the_wheel_that_is_built(project: NewProject) -> None:
    installs = [line for line in project.outputs if " install " in line]
    assert installs, "the README installs the wheel"
    assert any(wheel_of(project).name in line for line in installs), installs


def test_the_project_uses_the_installed_wheel_not_the_checkout(project: NewProject) -> None:
    output = project.manage(
        "shell", "-c", "import graphapp, django; print(graphapp.__file__, django.__version__)"
    )
    location = output.splitlines()[-1].split()
    assert Path(location[0]).is_relative_to(project.environment), location
    assert location[1] == importlib.metadata.version("Django")


def test_the_new_project_passes_manage_py_check(project: NewProject) -> None:
    [output] = [text for line, text in project.outputs.items() if line.endswith("check")]
    assert "System check identified no issues" in output, output
    assert "graphapp." not in output, output


def test_the_readmes_collectstatic_gathers_graphapps_static_files(project: NewProject) -> None:
    assert any(line.endswith(" collectstatic --noinput") for line in project.outputs), "not run"
    setting = "from django.conf import settings; print(settings.STATIC_ROOT)"
    static_root = Path(project.manage("shell", "-c", setting).splitlines()[-1])
    assert static_root.is_relative_to(project.cwd), static_root
    source = ROOT / "graphapp" / "static"
    shipped = {path.relative_to(source) for path in source.rglob("*") if path.is_file()}
    collected = {path.relative_to(static_root) for path in static_root.rglob("*") if path.is_file()}
    assert shipped - collected == set()


def test_anonymous_visitors_are_sent_to_the_admin_login(project: NewProject) -> None:
    assert httpx.get(f"{project.url}/graph/events/").status_code == 403
    page = httpx.get(f"{project.url}/graph/live/")
    assert page.status_code == 302
    assert page.headers["location"].startswith("/admin/login/?next=")


@contextlib.asynccontextmanager
async def admin_session(project: NewProject) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the superuser through the admin's login form, on daphne."""
    async with httpx.AsyncClient(base_url=project.url, timeout=EVENT_TIMEOUT) as client:
        page = await client.get("/admin/login/")
        assert page.headers.get("server", "").startswith("daphne"), page.headers
        answer = await client.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
                "next": "/admin/",
            },
        )
        assert answer.status_code == 302, answer.text[:500]
        yield client


async def test_the_live_page_and_its_static_files_are_served(project: NewProject) -> None:
    async with admin_session(project) as client:
        page = await client.get("/graph/live/")
        assert page.status_code == 200
        scripts = re.findall(r'src="([^"]*graphapp/panel\.js)"', page.text)
        assert scripts, page.text
        script = await client.get(scripts[0])
        assert script.status_code == 200
        assert script.content == (ROOT / "graphapp/static/graphapp/panel.js").read_bytes()


async def until_nodes(events: EventStream, count: int) -> dict[str, Any]:
    """The first stats event that shows ``count`` nodes (earlier ones show fewer)."""
    while True:
        event = await events.next_stats()
        assert event["nodes"] <= count, event
        if event["nodes"] == count:
            return event


async def test_saves_through_the_api_and_the_shell_reach_the_stream(
    project: NewProject,
) -> None:
    async with admin_session(project) as client, stream(client) as events:
        now = (await client.get("/graph/api/stats/")).json()
        await events.current(now)

        answer = await client.post(
            "/graph/api/nodes/",
            content=json.dumps({"content": "from the API", "node_type": "FACT"}),
            headers={
                "X-CSRFToken": client.cookies["csrftoken"],
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == 201, answer.text
        after_api = await until_nodes(events, now["nodes"] + 1)
        assert after_api["types"]["FACT"] == now["types"]["FACT"] + 1

        # Another process: the server sees its commit through SQLite's data_version.
        project.manage(
            "shell",
            "-c",
            "from graphapp.models import Node; "
            "Node.objects.create(content='from the shell', node_type='CODE')",
        )
        after_shell = await until_nodes(events, now["nodes"] + 2)
        assert after_shell["types"]["CODE"] == now["types"]["CODE"] + 1
