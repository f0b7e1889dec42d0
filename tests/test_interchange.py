"""graph_import and graph_export: CodeDreamer's JSON format."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from graphapp.models import Edge, Node

pytestmark = pytest.mark.django_db(transaction=True)


def codedreamer_file(nodes: int = 3) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": i,
                "content": f"node {i} ✓",
                "node_type": ["FACT", "CODE", "DREAM"][i % 3],
                "momentum": round(i / (nodes + 1), 3),
                "created_at": 1_700_000_000.25 + i,
                "last_accessed": 1_700_000_100.5 + i,
                "metadata": {"file": f"m{i}.py"},
            }
            for i in range(1, nodes + 1)
        ],
        "edges": [
            {
                "source_id": i,
                "target_id": i + 1,
                "relation": "same_file",
                "weight": 0.5,
                "created_at": 1_700_000_200.75,
            }
            for i in range(1, nodes)
        ],
        "node_counter": nodes,
    }


def write(tmp_path: Path, document: Any, name: str = "graph.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A file without its ids: nodes in order, edges by the positions of their ends."""
    position = {node["id"]: index for index, node in enumerate(document["nodes"])}
    return {
        "nodes": [{k: v for k, v in node.items() if k != "id"} for node in document["nodes"]],
        "edges": [
            {
                **edge,
                "source_id": position[edge["source_id"]],
                "target_id": position[edge["target_id"]],
            }
            for edge in document["edges"]
        ],
    }


def test_import_then_export_round_trips_without_loss(
    tmp_path: Path, published: list[dict[str, Any]]
) -> None:
    original = codedreamer_file(5)
    call_command("graph_import", str(write(tmp_path, original)), stdout=StringIO())
    assert [snapshot["nodes"] for snapshot in published] == [5]  # published once
    out = tmp_path / "out.json"
    call_command("graph_export", str(out), stdout=StringIO())
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert comparable(exported) == comparable(original)
    assert exported["node_counter"] == max(node["id"] for node in exported["nodes"])
    # And the export imports again to the same graph.
    call_command("graph_import", str(out), stdout=StringIO())
    assert Node.objects.count() == 10
    assert Edge.objects.count() == 8


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["nodes"][2].update(momentum=1.5), "nodes[2].momentum"),
        (lambda d: d["nodes"][1].update(node_type="IDEA"), "nodes[1].node_type"),
        (lambda d: d["nodes"][0].pop("content"), "nodes[0].content"),
        (lambda d: d["nodes"][0].update(created_at="yesterday"), "nodes[0].created_at"),
        (lambda d: d["nodes"][3].update(id=1), "nodes[3].id"),
        (lambda d: d["edges"][1].update(target_id=99), "edges[1].target_id"),
        (lambda d: d["edges"].append(dict(d["edges"][0])), "edges[4]"),
        (lambda d: d["edges"][0].update(weight="heavy"), "edges[0].weight"),
        (lambda d: d["nodes"].append("not a node"), "nodes[5]"),
    ],
)
def test_import_of_a_bad_file_changes_nothing_and_names_the_record(
    tmp_path: Path, change: Any, where: str, published: list[dict[str, Any]]
) -> None:
    Node.objects.create(content="already here", node_type="FACT")
    document = codedreamer_file(5)
    change(document)
    with pytest.raises(CommandError, match=re.escape(where)):
        call_command("graph_import", str(write(tmp_path, document)), stdout=StringIO())
    assert Node.objects.count() == 1
    assert not Edge.objects.exists()


def test_import_rejects_files_that_are_not_graphs(tmp_path: Path) -> None:
    for content, message in (("{nope", "not JSON"), ("[1, 2]", "expected a JSON object")):
        path = tmp_path / "bad.json"
        path.write_text(content)
        with pytest.raises(CommandError, match=message):
            call_command("graph_import", str(path), stdout=StringIO())
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("graph_import", str(tmp_path / "missing.json"), stdout=StringIO())


def test_export_to_standard_output(tmp_path: Path) -> None:
    call_command("graph_import", str(write(tmp_path, codedreamer_file(2))), stdout=StringIO())
    out = StringIO()
    call_command("graph_export", "-", stdout=out)
    assert len(json.loads(out.getvalue())["nodes"]) == 2
