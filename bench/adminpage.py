"""The admin's change page of a node with many edges: its size, and the time to
render it and to save the node through it.

Run as ``python -m bench.adminpage SIZES`` (comma-separated) with graphsite's
settings (DEBUG off) on an empty database (``DATABASE_URL``; it migrates);
prints JSON. For each size, makes a hub node with that many incoming edges and
another with as many outgoing ones
(``bulk_create``), then, signed in as a superuser through Django's test client,
reads each hub's change page and posts its form back (the fields of the page's
inputs, the content changed), each three times after a warm-up.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from typing import Any

import django

FIELD = re.compile(rb'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"')
VALUE = re.compile(rb'\bvalue="([^"]*)"')


def make_hub(edges: int, *, incoming: bool) -> int:
    from graphapp.models import Edge, Node

    hub = Node.objects.create(content="hub", node_type="CONCEPT")
    others = Node.objects.bulk_create(
        Node(content=f"spoke {i}", node_type="FACT") for i in range(edges)
    )
    Edge.objects.bulk_create(
        Edge(source=other, target=hub) if incoming else Edge(source=hub, target=other)
        for other in others
    )
    return hub.pk


def form_data(page: bytes) -> dict[str, str]:
    """Every named input of the page with its value (what a browser would post,
    near enough: unchecked boxes included), the content changed."""
    data: dict[str, str] = {}
    for tag in re.finditer(rb"<(?:input|select|textarea)\b[^>]*>", page):
        name = FIELD.match(tag.group(0))
        value = VALUE.search(tag.group(0))
        if name:
            data[name.group(1).decode()] = value.group(1).decode() if value else ""
    data.update(content="hub, saved", node_type="CONCEPT", momentum="0.5", metadata="{}")
    return data


def measure(client: Any, node_id: int) -> dict[str, Any]:
    path = f"/admin/graphapp/node/{node_id}/change/"
    client.get(path)  # warm-up
    reads, saves = [], []
    page = b""
    status = 0
    for _ in range(3):
        started = time.perf_counter()
        page = client.get(path).content
        reads.append(time.perf_counter() - started)
        data = form_data(page)
        started = time.perf_counter()
        status = client.post(path, data).status_code
        saves.append(time.perf_counter() - started)
    return {
        "page_bytes": len(page),
        "form_fields": len(FIELD.findall(page)),
        "read_s": statistics.median(reads),
        "save_s": statistics.median(saves),
        "save_status": status,  # 302: saved
    }


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench-admin", "", "unused")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    rows = [
        {
            "edges": edges,
            "direction": direction,
            **measure(client, make_hub(edges, incoming=direction == "incoming")),
        }
        for edges in (int(size) for size in sys.argv[1].split(","))
        for direction in ("incoming", "outgoing")
    ]
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
