"""End to end: ``change`` events beside the ``stats`` events, through daphne and real SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.live import (
    EventStream,
    LiveServer,
    create_node,
    csrf_headers,
    logged_in,
    login,
    post_json,
    stream,
)
from tests.test_e2e_stream import admin_action, admin_change_node

pytestmark = pytest.mark.e2e

SNAPSHOT_KEYS = {"type", "nodes", "edges", "avg_entanglement", "tiers", "types", "version", "at"}


def summed(changes: list[dict[str, Any]], kind: str) -> int:
    """How many changes of ``kind`` the events stand for, listed or counted."""
    return sum(
        sum(item["kind"] == kind for item in data["changes"]) + data["summary"].get(kind, 0)
        for data in changes
    )


async def next_change_where(
    events: EventStream, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next change event that ``wanted`` accepts: changes committed just before
    the stream opened may still be on their way, after their snapshot."""
    while True:
        data = await events.next_change()
        if wanted(data):
            return data


def about(node_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda data: any(item["id"] == node_id for item in data["changes"])


async def test_created_tier_change_and_deleted_nodes_reach_the_stream(
    live_server_default: LiveServer,
) -> None:
    server = live_server_default
    async with logged_in(server, "admin") as admin, stream(admin) as events:
        await events.current()
        node = await create_node(admin, server, node_type="CONCEPT", momentum=0.9)
        born = await next_change_where(events, about(node["id"]))
        await admin_change_node(
            admin,
            server,
            node["id"],
            content="edited, same tier",
            node_type="CONCEPT",
            momentum="0.85",
        )
        await admin_change_node(admin, server, node["id"], node_type="CONCEPT", momentum="0.2")
        cooled = await events.next_change()
        answer = await admin.post(
            f"/admin/graphapp/node/{node['id']}/delete/",
            data={"post": "yes", "csrfmiddlewaretoken": admin.cookies["csrftoken"]},
            headers=csrf_headers(admin, server),
        )
        assert answer.status_code == 302
        gone = await events.next_change()
    node_id = node["id"]
    assert born["changes"] == [
        {"kind": "created", "id": node_id, "node_type": "CONCEPT", "tier": "HOT"}
    ]
    # The edit within HOT told nothing: the next change is the move to COLD.
    assert cooled["changes"] == [
        {"kind": "tier", "id": node_id, "node_type": "CONCEPT", "tier": "COLD", "from": "HOT"}
    ]
    assert gone["changes"] == [
        {"kind": "deleted", "id": node_id, "node_type": "CONCEPT", "tier": "COLD"}
    ]
    for data in (born, cooled, gone):
        assert data["summary"] == {}
        assert data["_id"] == str(data["version"])
    assert int(born["_id"]) < int(cooled["_id"]) < int(gone["_id"])


async def test_stats_only_client_reads_the_same_stats_as_before(
    live_server_default: LiveServer,
) -> None:
    """Every message is named, so an EventSource's ``message`` handler sees none of
    the new ones, and the ``stats`` events keep their shape and order."""
    server = live_server_default
    async with (
        logged_in(server, "editor") as editor,
        editor.stream("GET", "/graph/events/") as response,
    ):
        before = (await editor.get("/graph/api/stats/")).json()
        for i in range(3):
            await create_node(editor, server, content=f"stats-only {i}", node_type="ENTITY")
        expected = (await editor.get("/graph/api/stats/")).json()
        messages: list[dict[str, str]] = []
        buffer = b""
        async for chunk in response.aiter_raw():
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for raw in complete:
                fields = dict(
                    line.split(": ", 1) for line in raw.decode().split("\n") if ": " in line
                )
                if "data" in fields:
                    messages.append(fields)
            stats = [json.loads(m["data"]) for m in messages if m["event"] == "stats"]
            if stats and stats[-1]["nodes"] == expected["nodes"]:
                break
    assert all(m.get("event") in {"stats", "history", "change"} for m in messages), messages
    snapshots = [m for m in messages if m["event"] == "stats"]
    assert all(m["id"] == str(json.loads(m["data"])["version"]) for m in snapshots)
    # A change event has no id of its own: it belongs to the snapshot before it.
    assert all("id" not in m for m in messages if m["event"] == "change")
    assert all(set(snapshot) == SNAPSHOT_KEYS for snapshot in stats)
    assert stats[-1]["types"]["ENTITY"] == expected["types"]["ENTITY"]
    assert [s["version"] for s in stats] == sorted(s["version"] for s in stats)
    assert stats[0]["nodes"] <= before["nodes"] + 3


async def test_batch_of_1000_nodes_is_one_change_event_with_a_summary(
    live_server_default: LiveServer,
) -> None:
    server = live_server_default
    async with logged_in(server, "editor") as editor, stream(editor) as events:
        await events.current()
        # COLD: the shared server's other tests list the top of the momentum order.
        batch = [
            {"content": f"burst {i}", "node_type": "CODE", "momentum": 0.3} for i in range(1000)
        ]
        answer = await post_json(editor, server, "/graph/api/nodes/", batch)
        assert answer.status_code == 201
        burst = await next_change_where(events, lambda data: "created" in data["summary"])
        await create_node(editor, server, content="after the burst")
        after = await events.next_change()
    assert burst["changes"] == []
    assert burst["summary"] == {"created": 1000}
    assert [item["kind"] for item in after["changes"]] == ["created"]


async def test_burst_of_separate_saves_yields_few_bounded_change_events(make_server: Any) -> None:
    server = make_server(graphapp={"COALESCE_WINDOW": 0.5, "CHANGE_LIMIT": 10})
    writers = [await login(server, "editor") for _ in range(10)]
    try:
        async with logged_in(server, "viewer") as viewer, stream(viewer) as events:
            await events.current()

            async def write(client: httpx.AsyncClient, n: int) -> None:
                for i in range(n):
                    await create_node(client, server, content=f"burst {i}", momentum=0.5)

            await asyncio.gather(*(write(client, 30) for client in writers))
            received: list[dict[str, Any]] = []
            while summed(received, "created") < 300:
                received.append(await events.next_change())
            with pytest.raises(TimeoutError):
                received.append(await events.next_change(within=1.5))
    finally:
        for client in writers:
            await client.aclose()
    assert summed(received, "created") == 300
    assert len(received) < 300, "not coalesced: one change event per save"
    for data in received:
        assert len(data["changes"]) <= 10
        assert not (data["changes"] and data["summary"]), "lines or totals, never both"


async def test_admin_actions_send_counts(live_server_default: LiveServer) -> None:
    server = live_server_default
    async with logged_in(server, "admin") as admin:
        ids = [(await create_node(admin, server, momentum=0.2))["id"] for _ in range(3)]
        async with stream(admin) as events:
            await events.current()
            await admin_action(admin, server, "activate_nodes", ids[:2])
            activated = await next_change_where(events, lambda data: "updated" in data["summary"])
            await admin_action(admin, server, "prune_cold_nodes", ids)
            pruned = await events.next_change()
    assert activated["summary"]["updated"] == 2
    assert pruned["summary"] == {"deleted": 1}
