"""MAX_METADATA_BYTES at every entrance: the JSON API, the admin's form, the
Python API and graph_import refuse metadata over it, naming the field, and
change nothing; metadata at the limit is stored.

The API in-process with Django's test client; the same through daphne is in
tests/test_api.py.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory, override_settings

from graphapp import api
from graphapp.conf import DEFAULTS
from graphapp.models import Node, metadata_size
from tests.factories import editor_client

pytestmark = pytest.mark.django_db

LIMIT = DEFAULTS["MAX_METADATA_BYTES"]


def sized(size: int, piece: str = "é") -> dict[str, Any]:
    """Metadata of exactly ``size`` bytes as compact UTF-8 JSON (``piece`` is 1
    to 4 bytes; the rest is filled with ASCII)."""
    overhead = metadata_size({"k": ""})
    count = (size - overhead) // len(piece.encode())
    text = piece * count
    text += "x" * (size - overhead - len(text.encode()))
    metadata = {"k": text}
    assert metadata_size(metadata) == size
    return metadata


def test_metadata_size_is_its_compact_json_in_utf8() -> None:
    assert metadata_size({}) == 2
    assert metadata_size({"a": [1, 2]}) == len(b'{"a":[1,2]}')
    assert metadata_size({"k": "\u00e9"}) == len('{"k":""}') + 2
    assert metadata_size({"k": "\U0001f525"}) == len('{"k":""}') + 4
    assert metadata_size({"k": "\n"}) == len('{"k":"\\n"}')


@pytest.fixture
def editor() -> Client:
    return editor_client()


def post(client: Client, payload: Any) -> tuple[int, Any]:
    answer = client.post(
        "/graph/api/nodes/", data=json.dumps(payload), content_type="application/json"
    )
    return answer.status_code, answer.json()


@pytest.mark.parametrize("piece", ["x", "\u00e9", "\U0001f525"])
def test_the_api_stores_metadata_at_the_limit_and_refuses_one_byte_more(
    editor: Client, piece: str
) -> None:
    status, created = post(
        editor, {"content": "c", "node_type": "FACT", "metadata": sized(LIMIT, piece)}
    )
    assert status == 201, created
    assert Node.objects.get(pk=created["id"]).metadata == sized(LIMIT, piece)
    status, answer = post(
        editor, {"content": "c", "node_type": "FACT", "metadata": sized(LIMIT + 1, piece)}
    )
    assert status == 400
    assert set(answer["errors"]) == {"metadata"}
    message = answer["errors"]["metadata"][0]
    assert f"{LIMIT + 1:,}" in message
    assert f"{LIMIT:,}" in message
    assert "MAX_METADATA_BYTES" in message
    assert Node.objects.count() == 1


def test_the_api_refuses_a_list_with_one_node_over_the_limit_whole(editor: Client) -> None:
    batch = [{"content": f"n{i}", "node_type": "FACT"} for i in range(3)]
    batch[1]["metadata"] = sized(LIMIT + 1)
    status, answer = post(editor, batch)
    assert status == 400
    assert answer["errors"] == {"1": {"metadata": [answer["errors"]["1"]["metadata"][0]]}}
    assert not Node.objects.exists()


@override_settings(GRAPHAPP={"MAX_METADATA_BYTES": 100})
def test_the_limit_is_the_setting_read_when_validating(editor: Client) -> None:
    assert post(editor, {"content": "c", "node_type": "FACT", "metadata": sized(100)})[0] == 201
    assert post(editor, {"content": "c", "node_type": "FACT", "metadata": sized(101)})[0] == 400


def test_the_python_api_refuses_metadata_over_the_limit() -> None:
    with pytest.raises(ValidationError) as raised:
        api.add_node("c", "FACT", metadata=sized(LIMIT + 1))
    assert set(raised.value.message_dict) == {"metadata"}
    assert not Node.objects.exists()
    assert api.add_node("c", "FACT", metadata=sized(LIMIT)).metadata == sized(LIMIT)


def admin_form(data: dict[str, Any]) -> Any:
    """The admin's own form for a node (as its add page builds it), bound to ``data``."""
    request = RequestFactory().get("/admin/graphapp/node/add/")
    request.user, _ = User.objects.get_or_create(username="boss", is_superuser=True, is_staff=True)
    form_class = admin.site.get_model_admin(Node).get_form(request)
    return form_class(data=data)


def test_the_admin_form_refuses_metadata_over_the_limit() -> None:
    fields = {"content": "c", "node_type": "FACT", "momentum": "1.0"}
    form = admin_form({**fields, "metadata": json.dumps(sized(LIMIT + 1))})
    assert not form.is_valid()
    assert set(form.errors) == {"metadata"}
    assert "MAX_METADATA_BYTES" in form.errors["metadata"][0]
    assert admin_form({**fields, "metadata": json.dumps(sized(LIMIT))}).is_valid()
    assert not Node.objects.exists()


def graph(metadata: list[dict[str, Any]]) -> dict[str, Any]:
    nodes = [
        {
            "id": i,
            "content": f"n{i}",
            "node_type": "FACT",
            "momentum": 0.5,
            "created_at": 0,
            "last_accessed": 0,
            "metadata": value,
        }
        for i, value in enumerate(metadata)
    ]
    return {"nodes": nodes, "edges": []}


def test_graph_import_names_the_node_over_the_limit_and_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph([{}, sized(LIMIT), sized(LIMIT + 1)])))
    with pytest.raises(CommandError) as raised:
        call_command("graph_import", str(path), stdout=StringIO())
    message = str(raised.value)
    assert "nodes[2].metadata: " in message
    assert "MAX_METADATA_BYTES" in message
    assert "\n" not in message
    assert not Node.objects.exists()
    path.write_text(json.dumps(graph([{}, sized(LIMIT)])))
    call_command("graph_import", str(path), stdout=StringIO())
    assert [node.metadata for node in Node.objects.order_by("pk")] == [{}, sized(LIMIT)]
