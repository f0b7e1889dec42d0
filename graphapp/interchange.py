"""CodeDreamer's JSON graph file: reading and writing it.

``{"nodes": [{"id", "content", "node_type", "momentum", "created_at",
"last_accessed", "metadata"}], "edges": [{"source_id", "target_id", "relation",
"weight", "created_at"}], "node_counter"}``, times as Unix seconds and the node
type by name. Import is all or nothing: every record is checked first, and an
error names the record and the reason.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from graphapp.models import Edge, Node
from graphapp.signals import publish_on_commit

BATCH = 5000


class ImportFileError(ValueError):
    """A record of the file is wrong; ``where`` names it (``nodes[3].momentum``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


def _time(value: datetime.datetime) -> float:
    return value.timestamp()


def export_graph() -> dict[str, Any]:
    """The whole graph in CodeDreamer's format."""
    nodes = [
        {
            "id": pk,
            "content": content,
            "node_type": node_type,
            "momentum": momentum,
            "created_at": _time(created),
            "last_accessed": _time(accessed),
            "metadata": metadata,
        }
        for pk, content, node_type, momentum, created, accessed, metadata in Node.objects.order_by(
            "pk"
        )
        .values_list(
            "pk", "content", "node_type", "momentum", "created_at", "last_accessed", "metadata"
        )
        .iterator(chunk_size=BATCH)
    ]
    edges = [
        {
            "source_id": source,
            "target_id": target,
            "relation": relation,
            "weight": weight,
            "created_at": _time(created),
        }
        for source, target, relation, weight, created in Edge.objects.order_by("pk")
        .values_list("source_id", "target_id", "relation", "weight", "created_at")
        .iterator(chunk_size=BATCH)
    ]
    return {
        "nodes": nodes,
        "edges": edges,
        "node_counter": max((node["id"] for node in nodes), default=0),
    }


def _field(record: dict[str, Any], where: str, key: str, kinds: tuple[type, ...]) -> Any:
    if key not in record:
        raise ImportFileError(f"{where}.{key}", "missing")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise ImportFileError(f"{where}.{key}", f"expected {names}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ImportFileError(f"{where}.{key}", "not a finite number")
    return value


def _moment(record: dict[str, Any], where: str, key: str) -> datetime.datetime:
    seconds = _field(record, where, key, (int, float))
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ImportFileError(f"{where}.{key}", f"not a time: {exc}") from exc


def _clean(instance: Node | Edge, where: str, exclude: list[str]) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ImportFileError(f"{where}.{field}", " ".join(messages)) from exc


def _nodes(records: list[Any], now: datetime.datetime) -> Iterator[tuple[Any, Node]]:
    seen: set[Any] = set()
    for index, record in enumerate(records):
        where = f"nodes[{index}]"
        if not isinstance(record, dict):
            raise ImportFileError(where, "expected an object")
        key = _field(record, where, "id", (int, str))
        if key in seen:
            raise ImportFileError(f"{where}.id", f"{key!r} appears twice")
        seen.add(key)
        metadata = record.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ImportFileError(f"{where}.metadata", "expected an object")
        node = Node(
            content=_field(record, where, "content", (str,)),
            node_type=_field(record, where, "node_type", (str,)),
            momentum=float(_field(record, where, "momentum", (int, float))),
            created_at=_moment(record, where, "created_at"),
            last_accessed=_moment(record, where, "last_accessed"),
            decayed_at=now,  # the file's momentum is as of now: decay counts from here
            metadata=metadata,
        )
        _clean(node, where, exclude=[])
        yield key, node


def _edges(records: list[Any], known: set[Any]) -> Iterator[tuple[Any, Any, Edge]]:
    pairs: set[tuple[Any, Any]] = set()
    for index, record in enumerate(records):
        where = f"edges[{index}]"
        if not isinstance(record, dict):
            raise ImportFileError(where, "expected an object")
        source = _field(record, where, "source_id", (int, str))
        target = _field(record, where, "target_id", (int, str))
        for key, value in (("source_id", source), ("target_id", target)):
            if value not in known:
                raise ImportFileError(f"{where}.{key}", f"no node with id {value!r} in the file")
        if (source, target) in pairs:
            raise ImportFileError(where, f"a second edge from {source!r} to {target!r}")
        pairs.add((source, target))
        edge = Edge(
            relation=_field(record, where, "relation", (str,)),
            weight=float(_field(record, where, "weight", (int, float))),
            created_at=_moment(record, where, "created_at"),
        )
        _clean(edge, where, exclude=["source", "target"])
        yield source, target, edge


def import_graph(document: Any) -> tuple[int, int]:
    """Add the file's nodes and edges (new ids); all or nothing. Returns the counts.

    Raises ImportFileError naming the first wrong record.
    """
    if not isinstance(document, dict):
        raise ImportFileError("file", "expected a JSON object with nodes and edges")
    node_records, edge_records = document.get("nodes"), document.get("edges", [])
    if not isinstance(node_records, list) or not isinstance(edge_records, list):
        raise ImportFileError("file", "nodes and edges must be lists")
    now = timezone.now()
    keys, nodes = zip(*_nodes(node_records, now), strict=True) if node_records else ((), ())
    edges = list(_edges(edge_records, set(keys)))
    with transaction.atomic():
        saved = Node.objects.bulk_create(nodes, batch_size=BATCH)
        ids = {key: node.pk for key, node in zip(keys, saved, strict=True)}
        for source, target, edge in edges:
            edge.source_id, edge.target_id = ids[source], ids[target]
        Edge.objects.bulk_create([edge for _, _, edge in edges], batch_size=BATCH)
        publish_on_commit(created=len(saved))
    return len(nodes), len(edges)
