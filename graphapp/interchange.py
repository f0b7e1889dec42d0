"""CodeDreamer's JSON graph file: reading and writing it.

``{"nodes": [{"id", "content", "node_type", "momentum", "created_at",
"last_accessed", "metadata"}], "edges": [{"source_id", "target_id", "relation",
"weight", "created_at"}], "node_counter"}``, times as Unix seconds and the node
type by name. Import is all or nothing: every record is checked first (types, unknown or
repeated fields, finite numbers, text and metadata that every database stores
exactly), and an error names the record and the reason.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from graphapp.models import RELATION_PATTERN, Edge, Node
from graphapp.signals import publish_on_commit
from graphapp.strictjson import (
    RepeatedKeys,
    loads,
    number_problem,
    shown,
    text_problem,
    value_problem,
)

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


NODE_KEYS = ("id", "content", "node_type", "momentum", "created_at", "last_accessed", "metadata")
EDGE_KEYS = ("source_id", "target_id", "relation", "weight", "created_at")
FILE_KEYS = ("nodes", "edges", "node_counter")


def _record(record: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``record`` as an object with only ``known`` keys, each given once."""
    if not isinstance(record, dict):
        raise ImportFileError(where, f"expected an object, got {_json_type(record)}")
    if isinstance(record, RepeatedKeys):
        raise ImportFileError(where, f"field {shown(record.repeated[0])} is given more than once")
    for key in record:
        if key not in known:
            raise ImportFileError(
                where, f"unknown field {shown(key)}; known fields: {', '.join(known)}"
            )
    return record


def _json_type(value: object) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return f"the number {shown(value)}"
    names = {str: "a string", list: "a list", dict: "an object"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "?")


KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _field(record: dict[str, Any], where: str, key: str, kinds: tuple[type, ...]) -> Any:
    if key not in record:
        raise ImportFileError(f"{where}.{key}", "missing")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(
            KIND_NAMES[kind] for kind in kinds if not (kind is int and float in kinds)
        )
        raise ImportFileError(f"{where}.{key}", f"expected {names}, got {_json_type(value)}")
    problem = number_problem(value) if isinstance(value, int | float) else None
    if problem:
        raise ImportFileError(f"{where}.{key}", problem)
    return value


def _text(record: dict[str, Any], where: str, key: str) -> str:
    value: str = _field(record, where, key, (str,))
    problem = text_problem(value)
    if problem:
        raise ImportFileError(f"{where}.{key}", problem)
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


def _metadata(record: dict[str, Any], where: str) -> dict[str, Any]:
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ImportFileError(
            f"{where}.metadata", f"expected an object, got {_json_type(metadata)}"
        )
    found = value_problem(metadata, f"{where}.metadata")
    if found:
        raise ImportFileError(*found)
    return metadata


def _nodes(records: list[Any], now: datetime.datetime) -> Iterator[tuple[Any, Node]]:
    seen: set[Any] = set()
    for index, item in enumerate(records):
        where = f"nodes[{index}]"
        record = _record(item, where, NODE_KEYS)
        key = _field(record, where, "id", (int, str))
        if key in seen:
            raise ImportFileError(f"{where}.id", f"{shown(key)} appears twice")
        seen.add(key)
        node = Node(
            content=_text(record, where, "content"),
            node_type=_field(record, where, "node_type", (str,)),
            momentum=float(_field(record, where, "momentum", (int, float))),
            created_at=_moment(record, where, "created_at"),
            last_accessed=_moment(record, where, "last_accessed"),
            decayed_at=now,  # the file's momentum is as of now: decay counts from here
            metadata=_metadata(record, where),
        )
        _clean(node, where, exclude=[])
        yield key, node


def _relation(record: dict[str, Any], where: str) -> str:
    relation: str = _field(record, where, "relation", (str,))
    # The model's pattern ends in "$", which also matches before a final newline.
    if not re.fullmatch(RELATION_PATTERN, relation):
        raise ImportFileError(f"{where}.relation", f"{shown(relation)} is not snake_case")
    return relation


def _edges(records: list[Any], known: set[Any]) -> Iterator[tuple[Any, Any, Edge]]:
    pairs: set[tuple[Any, Any]] = set()
    for index, item in enumerate(records):
        where = f"edges[{index}]"
        record = _record(item, where, EDGE_KEYS)
        source = _field(record, where, "source_id", (int, str))
        target = _field(record, where, "target_id", (int, str))
        for key, value in (("source_id", source), ("target_id", target)):
            if value not in known:
                raise ImportFileError(
                    f"{where}.{key}", f"no node with id {shown(value)} in the file"
                )
        if (source, target) in pairs:
            raise ImportFileError(where, f"a second edge from {shown(source)} to {shown(target)}")
        pairs.add((source, target))
        edge = Edge(
            relation=_relation(record, where),
            weight=float(_field(record, where, "weight", (int, float))),
            created_at=_moment(record, where, "created_at"),
        )
        _clean(edge, where, exclude=["source", "target"])
        yield source, target, edge


def _lists(document: Any) -> tuple[list[Any], list[Any]]:
    """The file's node and edge records, after checking its top level."""
    if not isinstance(document, dict):
        raise ImportFileError(
            "file", f"expected a JSON object with nodes and edges, got {_json_type(document)}"
        )
    _record(document, "file", FILE_KEYS)
    if "nodes" not in document:
        raise ImportFileError("file.nodes", "missing")
    records = {key: document.get(key, []) for key in ("nodes", "edges")}
    for key, value in records.items():
        if not isinstance(value, list):
            raise ImportFileError(f"file.{key}", f"expected a list, got {_json_type(value)}")
    if "node_counter" in document:
        _field(document, "file", "node_counter", (int,))
    return records["nodes"], records["edges"]


def read_graph(data: bytes) -> Any:
    """Parse a graph file's bytes: repeated keys are marked, NaN and Infinity are
    kept for :func:`import_graph` to report by record. Raises ImportFileError."""
    try:
        return loads(data, allow_constants=True)
    except RecursionError as exc:
        raise ImportFileError("not JSON", "nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise ImportFileError("not JSON", str(exc)) from exc


def import_graph(document: Any) -> tuple[int, int]:
    """Add the file's nodes and edges (new ids); all or nothing. Returns the counts.

    ``document`` is best read with :func:`read_graph`, which keeps repeated keys
    visible. Raises ImportFileError naming the first wrong record.
    """
    node_records, edge_records = _lists(document)
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
