"""End to end: daphne on a free port, logged-in clients, real SSE connections."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.live import (
    LiveServer,
    create_node,
    csrf_headers,
    group_members,
    health,
    logged_in,
    login,
    logout,
    post_json,
    read_until_closed,
    stream,
    wait_for_health,
)

pytestmark = pytest.mark.e2e


def node(content: str = "a fact", node_type: str = "FACT", momentum: float = 0.9) -> dict[str, Any]:
    return {"content": content, "node_type": node_type, "momentum": momentum}


async def admin_change_node(
    client: httpx.AsyncClient, server: LiveServer, node_id: int, **fields: Any
) -> None:
    form = {
        "content": "changed",
        "node_type": "FACT",
        "momentum": "0.5",
        "metadata": "{}",
        **{k: str(v) for k, v in fields.items()},
        "_save": "Save",
    }
    for prefix in ("outgoing", "incoming"):
        form |= {
            f"{prefix}-TOTAL_FORMS": "0",
            f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
    form["csrfmiddlewaretoken"] = client.cookies["csrftoken"]
    answer = await client.post(
        f"/admin/graphapp/node/{node_id}/change/", data=form, headers=csrf_headers(client, server)
    )
    assert answer.status_code == 302, answer.text[:2000]


async def test_stream_is_forbidden_to_anonymous_and_users_without_permission(
    stream_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=stream_server.url) as anonymous:
        answer = await anonymous.get("/graph/events/")
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"error": "You do not have permission to view the graph."}
        assert "Cookie" in answer.headers["vary"]
        german = await anonymous.get("/graph/events/", headers={"Accept-Language": "de"})
        assert german.status_code == 403
        assert german.json()["error"] != answer.json()["error"]  # in the visitor's language
    async with logged_in(stream_server, "nobody") as nobody:
        assert (await nobody.get("/graph/events/")).status_code == 403
        assert (await nobody.get("/graph/api/stats/")).status_code == 403
        assert (await nobody.get("/graph/api/health/")).status_code == 403


async def test_stream_headers_and_first_event_is_the_current_snapshot(
    stream_server: LiveServer,
) -> None:
    async with logged_in(stream_server, "viewer") as viewer:
        expected = (await viewer.get("/graph/api/stats/")).json()
        viewer.headers["Accept-Encoding"] = "gzip, deflate, br"
        async with stream(viewer) as events:
            assert events.response is not None
            headers = events.response.headers
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            assert "Cookie" in headers["vary"]
            assert "content-encoding" not in headers
            first = await events.next_stats()
    assert first["type"] == "update"
    for key in ("nodes", "edges", "avg_entanglement", "tiers", "types"):
        assert first[key] == expected[key], key
    assert set(first["tiers"]) == {"HOT", "WARM", "COLD"}
    assert set(first["types"]) == {"FACT", "CONCEPT", "CODE", "DREAM", "ENTITY"}
    assert first["_id"] == str(first["version"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["at"])


async def test_uvicorn_serves_both_paths_alike(make_server: Any, stream_application: str) -> None:
    # daphne serves every other test here; uvicorn sends, pauses and ends
    # responses its own way (it applies back-pressure, daphne does not).
    server = make_server(application=stream_application, server="uvicorn")
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        refused = await anonymous.get("/graph/events/")
        assert refused.status_code == 403
        assert refused.json() == {"error": "You do not have permission to view the graph."}
    async with logged_in(server, "editor") as editor, stream(editor) as events:
        assert events.response is not None
        assert events.response.headers["cache-control"] == "no-cache"
        assert events.response.headers["x-accel-buffering"] == "no"
        before = await events.next_stats()
        history = await events.next_history()
        assert history[-1]["version"] == int(before["_id"])
        await create_node(editor, server, content="on uvicorn", node_type="CODE")
        after = await events.next_stats()
    assert after["nodes"] == before["nodes"] + 1
    assert after["types"]["CODE"] == before["types"]["CODE"] + 1


async def test_stream_sends_retry_hint_and_heartbeats(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(application=stream_application, graphapp={"HEARTBEAT": 0.2, "RETRY": 1234})
    seen = b""
    async with (
        logged_in(server, "viewer") as viewer,
        viewer.stream("GET", "/graph/events/") as response,
    ):
        async for chunk in response.aiter_raw():
            seen += chunk
            if seen.count(b": heartbeat\n\n") >= 2:
                break
    # The retry travels in the first event, the snapshot, not in a block of its own.
    first_event = seen.split(b"\n\n", 1)[0]
    assert first_event.startswith(b"retry: 1234\nid: ")
    assert b"\nevent: stats\n" in first_event


async def test_api_create_publishes_an_event_with_the_new_counts(
    stream_server: LiveServer,
) -> None:
    async with logged_in(stream_server, "editor") as editor, stream(editor) as events:
        before = await events.current()
        await create_node(editor, stream_server, node_type="DREAM", momentum=0.5)
        after = await events.next_stats()
    assert after["nodes"] == before["nodes"] + 1
    assert after["types"]["DREAM"] == before["types"]["DREAM"] + 1
    assert after["tiers"]["WARM"] == before["tiers"]["WARM"] + 1
    assert after["version"] > before["version"]
    assert int(after["_id"]) > int(before["_id"])


async def test_tier_change_with_the_same_node_count_still_publishes(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        created = await create_node(admin, live_server_default, momentum=0.95)
        async with stream(admin) as events:
            before = await events.current()
            await admin_change_node(admin, live_server_default, created["id"], momentum=0.1)
            after = await events.next_stats()
    assert after["nodes"] == before["nodes"]
    assert after["tiers"]["HOT"] == before["tiers"]["HOT"] - 1
    assert after["tiers"]["COLD"] == before["tiers"]["COLD"] + 1


async def test_rolled_back_batch_publishes_nothing(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "editor") as editor, stream(editor) as events:
        before = await events.current()
        bad_batch = [node("one"), node("two"), node("three"), node("bad", momentum=7)]
        answer = await post_json(editor, live_server_default, "/graph/api/nodes/", bad_batch)
        assert answer.status_code == 400
        assert "momentum" in answer.json()["errors"]["3"]
        await create_node(editor, live_server_default, content="after the rollback")
        # The next event is the single creation's: the three saved-then-rolled-back
        # nodes were never published, and no event came for them.
        after = await events.next_stats()
    assert after["nodes"] == before["nodes"] + 1


async def test_transaction_of_100_saves_publishes_once_with_the_final_state(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "editor") as editor, stream(editor) as events:
        before = await events.current()
        batch = [node(f"batch {i}", node_type="CODE") for i in range(100)]
        answer = await post_json(editor, live_server_default, "/graph/api/nodes/", batch)
        assert answer.status_code == 201, answer.text
        batch_event = await events.next_stats()
        await create_node(editor, live_server_default, content="marker", node_type="ENTITY")
        marker_event = await events.next_stats()
    assert batch_event["nodes"] == before["nodes"] + 100
    assert batch_event["types"]["CODE"] == before["types"]["CODE"] + 100
    # Nothing came between the batch's event and the marker's: one event per transaction.
    assert marker_event["nodes"] == before["nodes"] + 101


async def test_edges_and_deletes_through_the_admin_publish(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        a = await create_node(admin, live_server_default, content="source")
        b = await create_node(admin, live_server_default, content="target")
        async with stream(admin) as events:
            before = await events.current()
            answer = await admin.post(
                "/admin/graphapp/edge/add/",
                data={
                    "source": a["id"],
                    "target": b["id"],
                    "relation": "depends_on",
                    "weight": "0.5",
                    "csrfmiddlewaretoken": admin.cookies["csrftoken"],
                    "_save": "Save",
                },
                headers=csrf_headers(admin, live_server_default),
            )
            assert answer.status_code == 302, answer.text[:2000]
            with_edge = await events.next_stats()
            answer = await admin.post(
                f"/admin/graphapp/node/{a['id']}/delete/",
                data={"post": "yes", "csrfmiddlewaretoken": admin.cookies["csrftoken"]},
                headers=csrf_headers(admin, live_server_default),
            )
            assert answer.status_code == 302
            deleted = await events.next_stats()
    assert with_edge["edges"] == before["edges"] + 1
    assert with_edge["nodes"] == before["nodes"]
    assert deleted["nodes"] == before["nodes"] - 1
    assert deleted["edges"] == before["edges"]  # the edge went with its node


async def admin_action(
    client: httpx.AsyncClient, server: LiveServer, action: str, ids: list[int]
) -> None:
    answer = await client.post(
        "/admin/graphapp/node/",
        data={
            "action": action,
            "_selected_action": [str(i) for i in ids],
            "index": "0",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers=csrf_headers(client, server),
    )
    assert answer.status_code == 302, answer.text[:2000]


async def test_admin_actions_publish(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        x = await create_node(admin, live_server_default, content="to activate", momentum=0.2)
        y = await create_node(admin, live_server_default, content="to prune", momentum=0.1)
        async with stream(admin) as events:
            before = await events.current()
            await admin_action(admin, live_server_default, "activate_nodes", [x["id"]])
            activated = await events.next_stats()
            await admin_action(admin, live_server_default, "prune_cold_nodes", [x["id"], y["id"]])
            pruned = await events.next_stats()
    # x: 0.2 + 0.3 = 0.5, from COLD to WARM.
    assert activated["tiers"]["COLD"] == before["tiers"]["COLD"] - 1
    assert activated["tiers"]["WARM"] == before["tiers"]["WARM"] + 1
    # Only y was still cold among the selected.
    assert pruned["nodes"] == before["nodes"] - 1
    assert pruned["tiers"]["COLD"] == before["tiers"]["COLD"] - 2
    assert pruned["tiers"]["WARM"] == activated["tiers"]["WARM"]


async def test_disconnected_clients_leave_nothing_behind(
    make_server: Any, stream_application: str
) -> None:
    server = make_server(application=stream_application)
    idle = await wait_for_health(server, streams=0)
    clients = [await login(server, "viewer") for _ in range(5)]
    streams = [stream(client) for client in clients]
    opened = [await s.__aenter__() for s in streams]
    for events in opened:
        await events.next_stats()
    shared = bool(server.redis_url)  # the in-memory layer is this process: no group to join
    busy = await wait_for_health(server, streams=5, subscribed=shared)
    assert busy["tasks"] > idle["tasks"]
    assert await group_members(server) == int(shared)  # one subscription for the process
    for s in streams:
        await s.__aexit__(None, None, None)
    for client in clients:
        await client.aclose()
    after = await wait_for_health(server, streams=0, subscribed=False)
    assert after["tasks"] <= idle["tasks"]
    for _ in range(100):
        if await group_members(server) == 0:
            break
        await asyncio.sleep(0.05)
    assert await group_members(server) == 0


async def test_connecting_clients_share_one_snapshot_computation(make_server: Any) -> None:
    server = make_server(graphapp={"MAX_CONNECTIONS_PER_USER": 30})
    before = await wait_for_health(server, streams=0)
    clients = [await login(server, "viewer") for _ in range(30)]
    streams = [stream(client) for client in clients]
    opened = await asyncio.gather(*(s.__aenter__() for s in streams))
    firsts = await asyncio.gather(*(events.next_stats() for events in opened))
    report = await health(server)
    for s in streams:
        await s.__aexit__(None, None, None)
    for client in clients:
        await client.aclose()
    assert len({first["version"] for first in firsts}) == 1
    # Computed for the connects: every snapshot but the publications'.
    loads = report["snapshots"] - report["published"]
    assert loads - (before["snapshots"] - before["published"]) == 1


async def test_failing_channel_layer_leaves_saves_working(make_server: Any) -> None:
    server = make_server(channel_backend="tests.layers.UnreachableChannelLayer")
    async with logged_in(server, "editor") as editor:
        for i in range(3):
            await create_node(editor, server, content=f"saved despite the broker {i}")
            await asyncio.sleep(0.15)  # let each save be published on its own
        listed = (await editor.get("/graph/api/nodes/?limit=100")).json()["nodes"]
    assert sum(n["content"].startswith("saved despite the broker") for n in listed) == 3
    log = server.log()
    assert "publishing to the channel layer failed: LayerDownError" in log
    assert log.count("publishing to the channel layer failed") == 1, "logged once per outage"


async def test_a_stream_whose_layer_is_down_still_shows_the_databases_truth(
    make_server: Any,
) -> None:
    server = make_server(channel_backend="tests.layers.UnreachableChannelLayer")
    async with logged_in(server, "editor") as editor, stream(editor) as events:
        before = await events.next_stats()
        await create_node(editor, server, content="published to a broker that is down")
        # No message can bring it: the hub's own look at the database does.
        after = await events.next_stats(within=5.0)
        report = await health(server)
    assert after["nodes"] == before["nodes"] + 1
    assert after["version"] > before["version"]
    assert report["subscribed"] is False
    assert report["state"] == "live"  # the database answers: these numbers are the truth
    log = server.log()
    assert "subscription to group 'graphapp.stats' failed" in log
    assert "LayerDownError" in log


async def test_changes_by_other_processes_reach_streams_through_the_database(
    make_server: Any,
) -> None:
    # The embedded default: SQLite and the in-memory layer, which reaches no
    # other process; the server sees their commits in the graph's version.
    server = make_server(services_run=False)
    async with logged_in(server, "viewer") as viewer, stream(viewer) as events:
        before = await events.current()
        shell = server.manage(
            "shell",
            "-c",
            "from graphapp.models import Node; "
            "Node.objects.create(content='from the shell', node_type='ENTITY', momentum=0.5)",
        )
        assert shell.returncode == 0, shell.stderr
        from_shell = await events.next_stats(within=5.0)
        decay = server.manage("graph_decay", "--hours", "100")
        assert decay.returncode == 0, decay.stderr
        from_cron = await events.next_stats(within=5.0)
    assert from_shell["nodes"] == before["nodes"] + 1
    assert from_shell["types"]["ENTITY"] == before["types"]["ENTITY"] + 1
    assert from_cron["tiers"] == {"HOT": 0, "WARM": 0, "COLD": before["nodes"] + 1}


async def test_a_permission_check_returning_a_coroutine_is_awaited(make_server: Any) -> None:
    # A plain function that returns the async default's coroutine must not let
    # everyone in because a coroutine object is truthy.
    server = make_server(graphapp={"VIEW_PERMISSION_CHECK": "tests.layers.wrapped_view_check"})
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/graph/api/stats/")).status_code == 403
    async with logged_in(server, "viewer") as viewer:
        assert (await viewer.get("/graph/api/stats/")).status_code == 200


EXPIRE_SESSION = """
from django.contrib.sessions.models import Session
from django.utils import timezone
Session.objects.filter(session_key={key!r}).update(expire_date=timezone.now())
"""
REVOKE_VIEW = """
from django.contrib.auth.models import Permission, User
User.objects.get(username="viewer").user_permissions.remove(
    Permission.objects.get(codename="view_node"))
"""


@pytest.mark.parametrize("change", ["session expires", "permission revoked"])
async def test_stream_ends_when_its_session_expires_or_its_permission_goes(
    make_server: Any, stream_application: str, change: str
) -> None:
    server = make_server(
        application=stream_application,
        graphapp={"HEARTBEAT": 0.1, "REVALIDATE_INTERVAL": 0.3},
    )
    async with logged_in(server, "viewer") as viewer, logged_in(server, "admin") as admin:
        async with (
            viewer.stream("GET", "/graph/events/") as streaming,
            admin.stream("GET", "/graph/events/") as kept,
        ):
            assert streaming.status_code == 200
            code = (
                EXPIRE_SESSION.format(key=viewer.cookies["sessionid"])
                if change == "session expires"
                else REVOKE_VIEW
            )
            done = server.manage("shell", "-c", code)
            assert done.returncode == 0, done.stderr
            body = await read_until_closed(streaming, within=5.0)
            assert b"event: stats" in body
            # Another user's stream passes check after check and streams on.
            with pytest.raises(TimeoutError):
                await read_until_closed(kept, within=1.0)
        assert (await viewer.get("/graph/events/")).status_code == 403
    # Ended by its periodic check, or, on Redis, where the revoked permission
    # also sends a recheck at once (graphapp.revoke), by whichever comes first.
    log = server.log()
    assert "its user may no longer read it" in log or "ended: their access changed" in log


async def test_a_logout_ends_that_sessions_streams_at_once(
    make_server: Any, stream_application: str
) -> None:
    # The periodic check is 10 minutes away: only the logout itself can end it.
    server = make_server(
        application=stream_application,
        graphapp={"REVALIDATE_INTERVAL": 600, "HEARTBEAT": 0.2},
    )
    async with logged_in(server, "viewer") as leaving, logged_in(server, "viewer") as staying:
        async with (
            leaving.stream("GET", "/graph/events/") as ended,
            staying.stream("GET", "/graph/events/") as kept,
        ):
            await logout(leaving, server)
            body = await read_until_closed(ended, within=5.0)
            assert b"event: stats" in body
            # The same user's other session streams on.
            with pytest.raises(TimeoutError):
                await read_until_closed(kept, within=1.0)
        assert (await leaving.get("/graph/events/")).status_code == 403
    assert "1 stream(s) ended by their session's logout" in server.log()


async def test_a_process_without_streams_does_no_statistics_work_for_other_commits(
    make_server: Any,
) -> None:
    # Only a process with open streams looks at the database; one without them
    # must not compute a snapshot per commit of the shell or of other servers.
    server = make_server(graphapp={"VERIFY_INTERVAL": 0.1})
    idle = await wait_for_health(server, streams=0)
    for count in ("3", "4"):
        seeded = server.manage("graph_seed", "--nodes", count)
        assert seeded.returncode == 0, seeded.stderr
    # Ten looks' worth of time, had it been looking (bounded: no event to wait on).
    await asyncio.sleep(1.0)
    after = await health(server)
    assert after["snapshots"] == idle["snapshots"]
    # ... and a stream opened now costs one computation and shows both commits.
    async with logged_in(server, "viewer") as viewer, stream(viewer) as events:
        first = await events.next_stats()
        truth = (await viewer.get("/graph/api/stats/")).json()
    assert first["nodes"] == truth["nodes"]
    assert first["version"] == truth["version"]
