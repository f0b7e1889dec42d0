"""graphapp's translations: every marked string translated, the .mo files compiled from
the .po files as committed, and German served to a browser that asks for it.

"Clean" means what ``make messages`` would find: makemessages, run on a copy of the
app, neither adds a string (marked in the code but missing from the catalog), nor
marks one fuzzy (changed in the code), nor leaves one obsolete (gone from the code).
It needs GNU gettext's tools (``make gettext`` installs Debian's).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest

from tests.live import ROOT, LiveServer, create_node, csrf_headers, logged_in, post_json

APP = ROOT / "graphapp"
MESSAGES = APP / "locale" / "de" / "LC_MESSAGES"
DOMAINS = ("django", "djangojs")
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}

Key = tuple[str | None, str, str | None]  # msgctxt, msgid, msgid_plural


def _gettext_tools() -> None:
    missing = [tool for tool in ("xgettext", "msgmerge", "msgfmt") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"GNU gettext is not installed ({', '.join(missing)}): run `make gettext`")


def _key(entry: polib.POEntry | polib.MOEntry) -> Key:
    return (entry.msgctxt or None, entry.msgid, entry.msgid_plural or None)


def _translations(entries: list[polib.POEntry] | polib.MOFile) -> dict[Key, tuple[str, ...]]:
    found: dict[Key, tuple[str, ...]] = {}
    for entry in entries:
        if not entry.msgid:
            continue  # the header
        plural = entry.msgstr_plural
        found[_key(entry)] = tuple(plural[n] for n in sorted(plural)) if plural else (entry.msgstr,)
    return found


def _regenerated(tmp_path: Path, domain: str) -> polib.POFile:
    """The catalog makemessages makes from the code, merged with the committed one."""
    copy = tmp_path / "graphapp"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "graphsite.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "makemessages", "-l", "de", "-d", domain],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return polib.pofile(str(copy / "locale" / "de" / "LC_MESSAGES" / f"{domain}.po"))


@pytest.mark.parametrize("domain", DOMAINS)
def test_makemessages_finds_nothing_new_changed_or_gone(tmp_path: Path, domain: str) -> None:
    _gettext_tools()
    committed = polib.pofile(str(MESSAGES / f"{domain}.po"))
    fresh = _regenerated(tmp_path, domain)
    entries = [entry for entry in fresh if not entry.obsolete]
    assert [e.msgid for e in entries if not e.translated() and "fuzzy" not in e.flags] == [], (
        "marked in the code, not translated: run `make messages` and translate them"
    )
    assert [e.msgid for e in entries if "fuzzy" in e.flags] == [], "changed in the code (fuzzy)"
    assert [e.msgid for e in fresh.obsolete_entries()] == [], "gone from the code (obsolete)"
    assert _translations(entries) == _translations(list(committed))
    assert not committed.metadata_is_fuzzy, "the catalog's header is still marked fuzzy"
    assert committed.metadata["Language"] == "de"


# What the code puts into a string, which its translation must keep: named and positional
# placeholders (Python's and interpolate()'s in JS), and HTML tags with their attributes.
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|<[^>]+>")


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_translation_keeps_the_placeholders_and_markup(domain: str) -> None:
    for entry in polib.pofile(str(MESSAGES / f"{domain}.po")):
        sources = [entry.msgid, entry.msgid_plural] if entry.msgid_plural else [entry.msgid]
        wanted = sorted(PLACEHOLDER.findall(sources[-1]))
        assert sorted(PLACEHOLDER.findall(sources[0])) == wanted, entry.msgid
        for text in entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]:
            assert sorted(PLACEHOLDER.findall(text)) == wanted, (entry.msgid, text)


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_file_is_compiled_from_the_po_file(tmp_path: Path, domain: str) -> None:
    _gettext_tools()
    compiled = tmp_path / f"{domain}.mo"
    # --check: the format strings' directives, the header, the plural forms.
    done = subprocess.run(
        ["msgfmt", "--check", "-o", str(compiled), str(MESSAGES / f"{domain}.po")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Compared by content, not by bytes: another gettext version may lay the file out anew.
    expected = _translations(polib.mofile(str(compiled)))
    assert expected, "nothing compiled"
    assert _translations(polib.mofile(str(MESSAGES / f"{domain}.mo"))) == expected, (
        "the .mo file is out of date: run `make compilemessages`"
    )


# -- served -----------------------------------------------------------------------------


@pytest.mark.e2e
async def test_a_german_browser_gets_the_live_page_and_its_catalog_in_german(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "viewer") as viewer:
        page = (await viewer.get("/graph/live/", headers=GERMAN)).text
        assert '<html lang="de">' in page
        assert "<title>Graph in Echtzeit</title>" in page
        assert "Letzte Änderungen" in page
        assert 'src="/graph/jsi18n/"' in page
        # The catalog comes before the scripts that call its gettext().
        assert page.index('src="/graph/jsi18n/"') < page.index('src="/static/graphapp/panel.js"')
        catalog = await viewer.get("/graph/jsi18n/", headers=GERMAN)
        assert catalog.status_code == 200
        assert "javascript" in catalog.headers["content-type"]
        assert '"aktuell"' in catalog.text
        assert '"angelegt in %(tier)s"' in catalog.text

        english = (await viewer.get("/graph/live/")).text
        assert '<html lang="en">' in english
        assert "<title>Graph, live</title>" in english
        assert '"aktuell"' not in (await viewer.get("/graph/jsi18n/")).text


@pytest.mark.e2e
async def test_a_german_browser_gets_the_admin_and_its_messages_in_german(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        created = await create_node(admin, live_server_default, node_type="DREAM")
        listing = (await admin.get("/admin/graphapp/node/", headers=GERMAN)).text
        for text in ("Nach Stufe", "Nach Knotentyp", "Heiß", "Traum", "Grad", "Alter"):
            assert text in listing, text
        assert "Ausgewählte kalte Knoten entfernen" in listing
        assert "Mittlere Verschränkung" in listing  # the panel, in the admin

        answer = await admin.post(
            "/admin/graphapp/node/",
            data={"action": "activate_nodes", "_selected_action": str(created["id"])},
            headers={**csrf_headers(admin, live_server_default), **GERMAN},
            follow_redirects=True,
        )
        assert answer.status_code == 200
        assert "1 Knoten aktiviert." in answer.text

        change = (await admin.get(f"/admin/graphapp/node/{created['id']}/change/", headers=GERMAN))
        for text in ("Ausgehende Kanten", "Eingehende Kanten", "Momentum", "Zuletzt aufgerufen"):
            assert text in change.text, text


@pytest.mark.e2e
async def test_the_api_explains_errors_in_the_language_asked_for(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "editor") as editor:
        english = await post_json(editor, live_server_default, "/graph/api/nodes/", {"x": 1})
        assert english.json()["errors"]["content"] == ["This field is required."]
        editor.headers.update(GERMAN)
        german = await post_json(editor, live_server_default, "/graph/api/nodes/", {"x": 1})
        assert german.status_code == 400
        errors = german.json()["errors"]
        assert errors["content"] == ["Dieses Feld ist zwingend erforderlich."]
        assert errors["x"] == [
            "Unbekanntes Feld; bekannte Felder: content, node_type, momentum, metadata."
        ]
        wrong = {"content": "x", "node_type": "FACT", "momentum": 2}
        answer = await post_json(editor, live_server_default, "/graph/api/nodes/", wrong)
        assert answer.json()["errors"]["momentum"] == [
            "Dieser Wert muss kleiner oder gleich 1.0 sein."  # Django's own, in German too
        ]
    async with logged_in(live_server_default, "viewer") as viewer:
        viewer.headers.update(GERMAN)
        refused = await post_json(viewer, live_server_default, "/graph/api/nodes/", {})
        assert refused.status_code == 403
        assert refused.json()["error"] == "Sie haben keine Berechtigung, Knoten anzulegen."
