"""History and replay through a real server, read over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Servers
from tests.live import EventStream, LiveServer, create_node, logged_in, stream

pytestmark = pytest.mark.e2e

POINT_FIELDS = ("nodes", "edges", "tiers", "types")


def shell(server: LiveServer, code: str) -> str:
    """Run ``code`` in ``manage.py shell`` (another process); what it printed."""
    done = server.manage("shell", "-v", "0", "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def no_more_changes(events: Any, within: float = 1.5) -> None:
    with pytest.raises(TimeoutError):
        await events.next_change(within=within)


async def test_a_new_stream_gets_the_recorded_history_after_its_first_snapshot(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(application=stream_application)
    seen: dict[int, dict[str, Any]] = {}
    async with logged_in(server, "editor") as editor, stream(editor) as watching:
        first = await watching.current()
        seen[int(first["_id"])] = first
        for i in range(3):
            await create_node(editor, server, content=f"history {i}", node_type="CODE")
            shown = await watching.current()
            seen[int(shown["_id"])] = shown
        # A second stream while the first keeps the hub: its history comes from
        # the hub's memory, the API's from the table; they agree.
        async with stream(editor) as events:
            latest = await events.next_stats()
            points = await events.next_history()
        api = (await editor.get("/graph/api/history/")).json()["points"]
    assert points == api
    assert points[-1]["version"] == int(latest["_id"])
    assert [p["version"] for p in points] == sorted(p["version"] for p in points)
    for point in points:
        if point["version"] in seen:
            snapshot = seen[point["version"]]
            assert {k: point[k] for k in POINT_FIELDS} == {k: snapshot[k] for k in POINT_FIELDS}
    assert points[-1]["nodes"] == first["nodes"] + 3


async def test_the_history_survives_a_restart(make_server: Any) -> None:
    server = make_server()
    async with logged_in(server, "editor") as editor:
        async with stream(editor) as events:
            await events.current()
            await create_node(editor, server, content="before the restart")
            before = await events.current()
        server.restart()
    async with logged_in(server, "viewer") as viewer, stream(viewer) as events:
        await events.next_stats()
        points = await events.next_history()
    assert int(before["_id"]) in [p["version"] for p in points]


async def test_a_stream_that_reconnects_gets_exactly_the_changes_it_missed(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(application=stream_application)
    async with logged_in(server, "editor") as editor:
        cooling = await create_node(editor, server, content="will cool", momentum=0.9)
        going = await create_node(editor, server, content="will go", node_type="CODE")
        async with stream(editor) as events:
            seen = await events.current()
        # While it is away, another process creates, moves and deletes.
        created = int(
            shell(
                server,
                "from graphapp.models import Node\n"
                "new = Node.objects.create(content='meanwhile', node_type='ENTITY', momentum=0.5)\n"
                f"cool = Node.objects.get(pk={cooling['id']}); cool.momentum = 0.1; cool.save()\n"
                f"Node.objects.get(pk={going['id']}).delete()\n"
                "print(new.pk)",
            ).splitlines()[-1]
        )
        async with stream(editor, headers={"Last-Event-ID": seen["_id"]}) as events:
            now = await events.next_stats()
            missed = await events.next_change()
            await no_more_changes(events)
        # A stream that saw the latest version missed nothing.
        async with stream(editor, headers={"Last-Event-ID": now["_id"]}) as events:
            await events.next_stats()
            await no_more_changes(events)
    assert [(c["kind"], c["id"]) for c in missed["changes"]] == [
        ("created", created),
        ("tier", cooling["id"]),
        ("deleted", going["id"]),
    ]
    assert missed["changes"][1]["from"] == "HOT"
    assert missed["changes"][1]["tier"] == "COLD"
    assert "gap" not in missed
    assert now["nodes"] == seen["nodes"]  # one created, one deleted


async def test_a_stream_from_before_the_logs_retention_is_told_of_a_gap(make_server: Any) -> None:
    server = make_server(graphapp={"CHANGE_LOG_LIMIT": 1})
    async with logged_in(server, "editor") as editor:
        async with stream(editor) as events:
            seen = await events.current()
        for i in range(3):  # each its own process, publication and pruning
            shell(
                server,
                "from graphapp.models import Node; "
                f"Node.objects.create(content='pruned {i}', node_type='FACT')",
            )
        async with stream(editor, headers={"Last-Event-ID": seen["_id"]}) as events:
            await events.next_stats()
            gap = await events.next_change()
        async with stream(editor, headers={"Last-Event-ID": "not-an-id"}) as events:
            await events.next_stats()
            unknown = await events.next_change()
    assert gap["gap"] is True
    assert gap["changes"] == []
    assert unknown["gap"] is True


async def test_the_last_event_id_parameter_stands_for_the_header(
    make_server: Any, stream_application: str
) -> None:
    # What stream.js sends: a new EventSource cannot set the header.
    server = make_server(application=stream_application)
    async with logged_in(server, "editor") as editor:
        async with stream(editor) as events:
            seen = await events.current()
        node = await create_node(editor, server, content="by parameter")
        reader = EventStream(editor, path=f"/graph/events/?last_event_id={seen['_id']}")
        try:
            await reader.open()
            await reader.next_stats()
            replayed = await reader.next_change()
        finally:
            await reader.close()
    assert [c["id"] for c in replayed["changes"]] == [node["id"]]


@pytest.mark.services
async def test_a_stream_that_reconnects_to_another_process_gets_the_same_replay(
    servers: Servers,
) -> None:
    a, b = servers.start(2, services_run=True)
    async with logged_in(a, "editor") as on_a, logged_in(b, "editor") as on_b:
        async with stream(on_a) as events:
            seen = await events.current()
        made = [await create_node(on_a, a, content=f"on a {i}") for i in range(2)]
        await asyncio.sleep(0.5)  # published on a meanwhile
        replays = []
        for client in (on_a, on_b):
            async with stream(client, headers={"Last-Event-ID": seen["_id"]}) as events:
                await events.next_stats()
                replays.append(await events.next_change())
    assert replays[0] == replays[1]
    assert [c["id"] for c in replays[1]["changes"]] == [n["id"] for n in made]
