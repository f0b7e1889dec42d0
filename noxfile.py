"""The suite on each supported (Python, Django) pair.

``nox`` runs every pair; ``nox -s "tests(django6.1)"`` one of them. ``make test``
runs only the newest pair here: its own .venv already is the other one
(requirements.txt). Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"  # the machine's interpreters, never a download
# A machine without Python 3.13 skips that session with nox's message; CI (which
# sets GRAPHAPP_REQUIRE_SERVICES=1, as for PostgreSQL, Redis and chromium) fails.
nox.options.error_on_missing_interpreters = os.environ.get("GRAPHAPP_REQUIRE_SERVICES") == "1"
nox.options.reuse_venv = "yes"  # pip still brings each session up to its pins

ROOT = Path(__file__).resolve().parent

# (Python, Django): the LTS on the oldest Python we support, each newer release on a
# newer Python. Keep pyproject.toml's classifiers and ranges in step.
SUPPORTED = {
    "django5.2": ("3.11", "5.2.19"),
    "django6.0": ("3.12", "6.0.10"),
    "django6.1": ("3.13", "6.1.3"),
}


def interpreter(version: str) -> str:
    """``pythonX.Y`` from PATH, or from pyenv when only its shim is there.

    A pyenv shim of a version that is installed but not selected exits with
    "command not found", and nox's discovery skips such versions.
    """
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pattern = os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")
    candidates = sorted(glob.glob(pattern), key=_patch_level)
    return candidates[-1] if candidates else version  # nox then says it is missing


def _patch_level(path: str) -> int:
    match = re.search(r"versions/\d+\.\d+\.(\d+)/", path)
    return int(match[1]) if match else -1


# Only in the main .venv: the type checker, its stubs, and nox itself.
MAIN_VENV_ONLY = {"django-stubs", "types-channels", "mypy", "nox"}


def requirements(django: str) -> list[str]:
    """requirements.txt with this session's Django, without the type checkers'
    stubs (pinned to the main Django; mypy runs in the main .venv)."""
    pins = []
    for text in (ROOT / "requirements.txt").read_text().splitlines():
        line = text.split(" #", 1)[0].strip()  # pip allows a comment after a pin
        name = re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower()
        if not name or name.startswith("#") or name in MAIN_VENV_ONLY:
            continue
        pins.append(f"Django=={django}" if name == "django" else line)
    return pins


@nox.session
@nox.parametrize(
    ("python", "django"),
    [(interpreter(python), django) for python, django in SUPPORTED.values()],
    ids=list(SUPPORTED),
)
def tests(session: nox.Session, django: str) -> None:
    """pytest on the embedded default (SQLite, in-memory layer)."""
    session.install(*requirements(django))
    installed = session.run("python", "-c", "import django; print(django.__version__)", silent=True)
    assert isinstance(installed, str)
    assert installed.strip() == django, installed
    session.run("pytest", *session.posargs)
