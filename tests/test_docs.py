"""The documentation site: it builds in strict mode, and its reference pages
say what the code does (every setting with its default, every system check id).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import graphapp
from graphapp import api, conf
from tests.live import ROOT

DOCS = ROOT / "docs"
# A setting's heading and the line under it, as docs/settings.md writes them.
SETTING = re.compile(r"^### `(?P<name>\w+)`\n\nDefault: `(?P<default>[^`]+)`$", re.MULTILINE)
SETTING_HEADING = re.compile(r"^### `(\w+)`$", re.MULTILINE)
CHECK_HEADING = re.compile(r"^## (graphapp\.[EW]\d{3})$", re.MULTILINE)


def documented_settings() -> dict[str, object]:
    page = (DOCS / "settings.md").read_text()
    found = {m["name"]: ast.literal_eval(m["default"]) for m in SETTING.finditer(page)}
    headings = SETTING_HEADING.findall(page)
    assert sorted(headings) == sorted(found), "a setting's heading without 'Default: `...`'"
    assert len(headings) == len(set(headings)), "a setting documented twice"
    return found


def test_settings_page_documents_every_setting_and_no_other() -> None:
    assert set(documented_settings()) == set(conf.DEFAULTS)


@pytest.mark.parametrize(("name", "default"), list(conf.DEFAULTS.items()))
def test_settings_page_gives_each_setting_its_real_default(name: str, default: object) -> None:
    documented = documented_settings().get(name)
    # The type too: `15` documented for 15.0 would tell a reader a whole number will do.
    assert (documented, type(documented)) == (default, type(default))


def check_ids_in_code() -> set[str]:
    """Every ``id=`` that graphapp/checks.py gives a check message."""
    tree = ast.parse((ROOT / "graphapp" / "checks.py").read_text())
    ids = {
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "id" and isinstance(keyword.value, ast.Constant)
    }
    assert ids, "no check id found in graphapp/checks.py"
    return ids


def test_checks_page_documents_every_check_id_and_no_other() -> None:
    page = (DOCS / "checks.md").read_text()
    headings = CHECK_HEADING.findall(page)
    assert len(headings) == len(set(headings)), "a check documented twice"
    assert set(headings) == check_ids_in_code()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as `make docs` builds it: a warning fails the build."""
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout[-3000:]}\n{done.stderr}"
    return out


def test_docs_build_strictly_into_an_index_page(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert f"graphapp {graphapp.__version__}" in index


def test_every_page_in_docs_is_built(site: Path) -> None:
    pages = {path.stem for path in DOCS.glob("*.md")}
    assert {"quickstart", "flow", "events", "settings", "checks", "api"} <= pages
    assert {"deployment", "benchmarks", "changelog"} <= pages
    assert {page for page in pages if not (site / f"{page}.html").is_file()} == set()


def test_api_page_documents_every_public_name_from_its_docstring(site: Path) -> None:
    page = (site / "api.html").read_text()
    assert {name for name in api.__all__ if f'id="graphapp.api.{name}"' not in page} == set()
    first_line = (api.add_node.__doc__ or "").splitlines()[0]
    assert first_line.split(";")[0] in page


def test_benchmark_plots_are_in_the_site(site: Path) -> None:
    page = (site / "benchmarks.html").read_text()
    images = re.findall(r'<img[^>]* src="([^"]+\.png)"', page)
    plots = {path.name for path in (DOCS / "bench").glob("*.png")}
    assert plots, "docs/bench has no plots"
    assert {Path(src).name for src in images} >= plots
    assert [src for src in images if not (site / src).is_file()] == []


def test_changelog_page_is_the_changelog(site: Path) -> None:
    page = (site / "changelog.html").read_text()
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert any("0.1.0" in heading for heading in headings), headings
    assert [heading for heading in headings if heading not in page] == []
