"""End to end: the JSON API (stats, listing and creating nodes) served by a real daphne.

The server's database is shared by every test that uses ``live_server_default``, so
these tests assert relative to what they create or read, never absolute totals.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from graphapp.conf import DEFAULTS
from tests.live import LiveServer, csrf_headers, logged_in, post_json

pytestmark = pytest.mark.e2e

NODES = "/graph/api/nodes/"
STATS = "/graph/api/stats/"
TIERS = {"HOT", "WARM", "COLD"}
TYPES = {"FACT", "CONCEPT", "CODE", "DREAM", "ENTITY"}


def node(
    content: str = "a fact", node_type: str = "FACT", momentum: float = 0.9, **extra: Any
) -> dict[str, Any]:
    return {"content": content, "node_type": node_type, "momentum": momentum, **extra}


def tag() -> str:
    """Distinctive text, so a test finds its own nodes in the shared database."""
    return f"api-test-{uuid.uuid4().hex}"


@pytest.fixture
async def editor(live_server_default: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(live_server_default, "editor") as client:
        yield client


@pytest.fixture
async def viewer(live_server_default: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(live_server_default, "viewer") as client:
        yield client


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get(STATS)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def node_count(client: httpx.AsyncClient) -> int:
    count: int = (await snapshot(client))["nodes"]
    return count


async def create(
    client: httpx.AsyncClient, server: LiveServer, payload: Any
) -> dict[str, Any] | list[dict[str, Any]]:
    answer = await post_json(client, server, NODES, payload)
    assert answer.status_code == 201, answer.text[:500]
    body: dict[str, Any] = answer.json()
    if isinstance(payload, list):
        created: list[dict[str, Any]] = body["nodes"]
        return created
    return body


async def create_one(
    client: httpx.AsyncClient, server: LiveServer, **fields: Any
) -> dict[str, Any]:
    created = await create(client, server, node(**fields))
    assert isinstance(created, dict)
    return created


async def list_nodes(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    answer = await client.get(f"{NODES}{query}")
    assert answer.status_code == 200, answer.text
    nodes: list[dict[str, Any]] = answer.json()["nodes"]
    return nodes


async def post_raw(client: httpx.AsyncClient, server: LiveServer, body: bytes) -> httpx.Response:
    return await client.post(
        NODES,
        content=body,
        headers={**csrf_headers(client, server), "Content-Type": "application/json"},
    )


def assert_ordered_by_momentum(nodes: list[dict[str, Any]]) -> None:
    keys = [(n["momentum"], n["id"]) for n in nodes]
    assert keys == sorted(keys, reverse=True)


# -- GET /graph/api/stats/ -----------------------------------------------------------


async def test_stats_is_forbidden_to_anonymous(live_server_default: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server_default.url) as anonymous:
        answer = await anonymous.get(STATS)
    assert answer.status_code == 403
    assert "error" in answer.json()


async def test_stats_is_forbidden_without_view_permission(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "nobody") as nobody:
        answer = await nobody.get(STATS)
    assert answer.status_code == 403
    assert "error" in answer.json()


async def test_stats_gives_the_viewer_the_whole_snapshot(viewer: httpx.AsyncClient) -> None:
    answer = await viewer.get(STATS)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    stats = answer.json()
    assert {"type", "nodes", "edges", "avg_entanglement", "tiers", "types", "version", "at"} <= set(
        stats
    )
    assert stats["type"] == "update"
    assert set(stats["tiers"]) == TIERS
    assert set(stats["types"]) == TYPES
    assert sum(stats["tiers"].values()) == stats["nodes"]
    assert sum(stats["types"].values()) == stats["nodes"]
    assert isinstance(stats["edges"], int)
    assert stats["edges"] >= 0
    assert 0.0 <= stats["avg_entanglement"] <= 1.0
    assert isinstance(stats["version"], int)
    at = datetime.datetime.fromisoformat(stats["at"])
    assert at.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - at) < datetime.timedelta(minutes=5)


async def test_stats_versions_are_the_databases_and_grow_with_its_writes(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    first = await snapshot(editor)
    again = await snapshot(editor)
    assert again["version"] == first["version"]  # the same state, the same version
    await create_one(editor, live_server_default, content=tag(), node_type="FACT")
    after = await snapshot(editor)
    assert after["version"] > first["version"]


async def test_stats_counts_a_created_node_in_its_tier_and_type(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await snapshot(editor)
    await create_one(editor, live_server_default, content=tag(), node_type="CONCEPT", momentum=0.5)
    after = await snapshot(editor)
    assert after["nodes"] == before["nodes"] + 1
    assert after["types"]["CONCEPT"] == before["types"]["CONCEPT"] + 1
    assert after["tiers"]["WARM"] == before["tiers"]["WARM"] + 1
    assert after["tiers"]["HOT"] == before["tiers"]["HOT"]
    assert after["tiers"]["COLD"] == before["tiers"]["COLD"]


# -- GET /graph/api/nodes/ -----------------------------------------------------------


async def test_nodes_list_is_forbidden_to_anonymous_and_users_without_permission(
    live_server_default: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server_default.url) as anonymous:
        assert (await anonymous.get(NODES)).status_code == 403
    async with logged_in(live_server_default, "nobody") as nobody:
        assert (await nobody.get(NODES)).status_code == 403


async def test_nodes_list_filters_by_type(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    mine = {
        kind: await create_one(
            editor, live_server_default, content=tag(), node_type=kind, momentum=1
        )
        for kind in sorted(TYPES)
    }
    for kind, created in mine.items():
        listed = await list_nodes(viewer, f"?type={kind}&limit=100")
        assert {n["node_type"] for n in listed} == {kind}
        # The newest node at the highest momentum comes first.
        assert listed[0]["id"] == created["id"]
        others = {other["id"] for other in mine.values()} - {created["id"]}
        assert not others & {n["id"] for n in listed}


async def test_nodes_list_filters_by_tier(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    # Each at the top of its tier, so it is the first node the filter lists.
    hot = await create_one(editor, live_server_default, content=tag(), momentum=1.0)
    warm = await create_one(editor, live_server_default, content=tag(), momentum=0.7999)
    cold = await create_one(editor, live_server_default, content=tag(), momentum=0.3999)
    listed_hot = await list_nodes(viewer, "?tier=HOT&limit=100")
    listed_warm = await list_nodes(viewer, "?tier=WARM&limit=100")
    listed_cold = await list_nodes(viewer, "?tier=COLD&limit=100")
    assert listed_hot[0]["id"] == hot["id"]
    assert listed_warm[0]["id"] == warm["id"]
    assert listed_cold[0]["id"] == cold["id"]
    assert all(n["momentum"] >= 0.8 and n["tier"] == "HOT" for n in listed_hot)
    assert all(0.4 <= n["momentum"] < 0.8 and n["tier"] == "WARM" for n in listed_warm)
    assert all(n["momentum"] < 0.4 and n["tier"] == "COLD" for n in listed_cold)


async def test_nodes_list_combines_type_and_tier(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    wanted = await create_one(
        editor, live_server_default, content=tag(), node_type="DREAM", momentum=0.7999
    )
    await create_one(editor, live_server_default, content=tag(), node_type="DREAM", momentum=1.0)
    await create_one(editor, live_server_default, content=tag(), node_type="CODE", momentum=0.7999)
    listed = await list_nodes(viewer, "?type=DREAM&tier=WARM&limit=100")
    assert listed[0]["id"] == wanted["id"]
    assert all(n["node_type"] == "DREAM" and n["tier"] == "WARM" for n in listed)


async def test_nodes_list_is_ordered_by_momentum_descending(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    # Created out of momentum order, so that id order would give a different answer.
    low = await create_one(editor, live_server_default, content=tag(), momentum=0.9999)
    top = await create_one(editor, live_server_default, content=tag(), momentum=1.0)
    middle = await create_one(editor, live_server_default, content=tag(), momentum=0.99995)
    listed = await list_nodes(viewer, "?limit=100")
    assert listed[0]["id"] == top["id"]
    ids = [n["id"] for n in listed]
    assert ids.index(top["id"]) < ids.index(middle["id"]) < ids.index(low["id"])
    assert_ordered_by_momentum(listed)


async def test_nodes_list_limit_defaults_to_10_and_goes_up_to_100(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    await create(
        editor, live_server_default, [node(tag(), "CODE", momentum=0.05) for _ in range(100)]
    )
    total = await node_count(viewer)
    assert total >= 100
    default = await list_nodes(viewer)
    assert len(default) == 10
    assert_ordered_by_momentum(default)
    assert len(await list_nodes(viewer, "?limit=100")) == 100
    first_three = await list_nodes(viewer, "?limit=3")
    assert [n["id"] for n in first_three] == [n["id"] for n in default[:3]]
    assert len(await list_nodes(viewer, "?limit=1")) == 1


# Metadata as rows written before MAX_METADATA_BYTES (or past it, in bulk) hold
# it: 10 nodes of 2.5 MB each, as in issue 15, with 5 small ones below them.
LEGACY_ROWS = """
from graphapp.models import Node
big = [Node(content=f"big {i}", node_type="FACT", momentum=0.95, metadata={"blob": "x" * 2_500_000})
       for i in range(10)]
small = [Node(content=f"small {i}", node_type="CODE", momentum=0.5) for i in range(5)]
Node.objects.bulk_create(big + small)
"""


async def test_nodes_list_stops_before_max_list_bytes_and_says_truncated(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    seeded = server.manage("shell", "-c", LEGACY_ROWS)
    assert seeded.returncode == 0, seeded.stderr
    bound = DEFAULTS["MAX_LIST_BYTES"]
    async with logged_in(server, "viewer") as viewer:
        answer = await viewer.get(f"{NODES}?limit=100")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert len(answer.content) <= bound
        listed = answer.json()
        assert listed["truncated"] is True
        # The first nodes in order, as many as fit: 3 of 2.5 MB in 8 MiB.
        assert [node["content"] for node in listed["nodes"]] == ["big 9", "big 8", "big 7"]
        assert all(len(node["metadata"]["blob"]) == 2_500_000 for node in listed["nodes"])
        small = (await viewer.get(f"{NODES}?limit=100&tier=WARM")).json()
        assert small["truncated"] is False
        assert [node["content"] for node in small["nodes"]] == [
            f"small {i}" for i in range(4, -1, -1)
        ]
        assert len((await viewer.get(f"{NODES}?limit=2")).json()["nodes"]) == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=1.5", "limit"),
        ("?type=PLANET", "type"),
        ("?type=fact", "type"),
        ("?tier=LUKEWARM", "tier"),
    ],
)
async def test_nodes_list_rejects_bad_filters_with_field_errors(
    viewer: httpx.AsyncClient, query: str, field: str
) -> None:
    answer = await viewer.get(f"{NODES}{query}")
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert set(errors) == {field}
    assert errors[field]
    assert all(isinstance(message, str) and message for message in errors[field])


# -- POST /graph/api/nodes/ ----------------------------------------------------------


async def test_nodes_create_returns_201_with_the_saved_node(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    content = tag()
    answer = await post_json(
        editor,
        live_server_default,
        NODES,
        node(content, "CONCEPT", momentum=0.55, metadata={"source": "api", "line": 3}),
    )
    assert answer.status_code == 201, answer.text[:500]
    created = answer.json()
    assert isinstance(created["id"], int)
    assert created["content"] == content
    assert created["node_type"] == "CONCEPT"
    assert created["momentum"] == 0.55
    assert created["tier"] == "WARM"
    assert created["metadata"] == {"source": "api", "line": 3}
    created_at = datetime.datetime.fromisoformat(created["created_at"])
    assert abs(datetime.datetime.now(datetime.UTC) - created_at) < datetime.timedelta(minutes=5)
    datetime.datetime.fromisoformat(created["last_accessed"])
    assert await node_count(editor) == before + 1
    listed = await list_nodes(editor, "?type=CONCEPT&tier=WARM&limit=100")
    assert created in listed


async def test_nodes_create_defaults_momentum_to_1_and_metadata_to_empty(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    created = await create(editor, live_server_default, {"content": tag(), "node_type": "FACT"})
    assert isinstance(created, dict)
    assert created["momentum"] == 1.0
    assert created["tier"] == "HOT"
    assert created["metadata"] == {}


async def test_nodes_create_keeps_an_empty_metadata_object(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    created = await create_one(editor, live_server_default, content=tag(), metadata={})
    assert created["metadata"] == {}
    listed = await list_nodes(editor, "?type=FACT&tier=HOT&limit=100")
    assert next(n for n in listed if n["id"] == created["id"])["metadata"] == {}


@pytest.mark.parametrize(
    ("momentum", "tier"),
    [(1, "HOT"), (0.8, "HOT"), (0.7999, "WARM"), (0.4, "WARM"), (0.3999, "COLD"), (0, "COLD")],
)
async def test_nodes_create_derives_the_tier_from_momentum(
    live_server_default: LiveServer, editor: httpx.AsyncClient, momentum: float, tier: str
) -> None:
    created = await create_one(editor, live_server_default, content=tag(), momentum=momentum)
    assert created["momentum"] == momentum
    assert created["tier"] == tier


async def test_nodes_create_accepts_content_of_exactly_20000_characters(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    content = tag() + "x" * (20_000 - len(tag()))
    assert len(content) == 20_000
    created = await create_one(editor, live_server_default, content=content)
    assert created["content"] == content


async def test_nodes_create_round_trips_unicode_exactly(
    live_server_default: LiveServer, editor: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    content = (
        f"{tag()} emoji \U0001f525\U0001f9e0 family \U0001f468\u200d\U0001f469\u200d\U0001f467 "
        "RTL \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200fmark\u200e "
        "combining e\u0301 vs \u00e9, CJK \u77e5\u8bc6\u56fe\u8c31, "
        "math \U0001d49c, line\nbreak\ttab \u2028sep \ufeffbom \uffff end \u00bf?"
    )
    metadata = {"\u540d\u524d": "\u05e2\u05d1\u05e8\u05d9\u05ea \U0001f680", "n": [1, "\u00e9"]}
    created = await create_one(
        editor,
        live_server_default,
        content=content,
        metadata=metadata,
        node_type="ENTITY",
        momentum=1.0,
    )
    assert created["content"] == content
    assert created["metadata"] == metadata
    listed = await list_nodes(viewer, "?type=ENTITY&tier=HOT")
    stored = next(n for n in listed if n["id"] == created["id"])
    assert stored["content"] == content
    assert stored["metadata"] == metadata


async def test_nodes_create_list_saves_every_node_and_returns_them_in_order(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await snapshot(editor)
    batch = [
        node(tag(), "FACT", momentum=0.9),
        node(tag(), "CODE", momentum=0.5),
        node(tag(), "DREAM", momentum=0.1, metadata={"cycle": 7}),
    ]
    answer = await post_json(editor, live_server_default, NODES, batch)
    assert answer.status_code == 201, answer.text[:500]
    created = answer.json()["nodes"]
    assert [n["content"] for n in created] == [n["content"] for n in batch]
    assert [n["tier"] for n in created] == ["HOT", "WARM", "COLD"]
    assert created[2]["metadata"] == {"cycle": 7}
    ids = [n["id"] for n in created]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    after = await snapshot(editor)
    assert after["nodes"] == before["nodes"] + 3
    for kind in ("FACT", "CODE", "DREAM"):
        assert after["types"][kind] == before["types"][kind] + 1


async def test_nodes_create_list_of_1000_is_accepted(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    created = await create(
        editor, live_server_default, [node(tag(), "ENTITY", momentum=0.01) for _ in range(1000)]
    )
    assert len(created) == 1000
    assert await node_count(editor) == before + 1000


async def test_nodes_create_list_with_an_invalid_item_saves_nothing(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    contents = [tag() for _ in range(4)]
    batch = [node(content, momentum=1.0) for content in contents]
    batch[2]["momentum"] = 1.5
    answer = await post_json(editor, live_server_default, NODES, batch)
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert set(errors) == {"2"}
    assert set(errors["2"]) == {"momentum"}
    assert await node_count(editor) == before
    listed = await list_nodes(editor, "?limit=100")
    assert not {n["content"] for n in listed} & set(contents)


async def test_nodes_create_list_reports_every_invalid_item_by_index(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    batch = [
        node(tag()),
        {"content": "", "node_type": "FACT"},
        node(tag()),
        {"content": tag(), "node_type": "PLANET"},
        "not an object",
    ]
    answer = await post_json(editor, live_server_default, NODES, batch)
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert set(errors) == {"1", "3", "4"}
    assert "content" in errors["1"]
    assert "node_type" in errors["3"]
    assert "__all__" in errors["4"]
    assert await node_count(editor) == before


async def test_nodes_create_is_forbidden_to_a_viewer(
    live_server_default: LiveServer, viewer: httpx.AsyncClient
) -> None:
    before = await node_count(viewer)
    answer = await post_json(viewer, live_server_default, NODES, node(tag()))
    assert answer.status_code == 403
    assert "error" in answer.json()
    assert await node_count(viewer) == before


async def test_nodes_create_is_forbidden_to_anonymous(
    live_server_default: LiveServer, viewer: httpx.AsyncClient
) -> None:
    before = await node_count(viewer)
    async with httpx.AsyncClient(base_url=live_server_default.url) as anonymous:
        # A CSRF cookie, so that the refusal comes from the permission check.
        (await anonymous.get("/accounts/login/")).raise_for_status()
        answer = await post_json(anonymous, live_server_default, NODES, node(tag()))
    assert answer.status_code == 403
    assert "error" in answer.json()
    assert await node_count(viewer) == before


async def test_nodes_create_without_csrf_token_is_refused(
    live_server_default: LiveServer, editor: httpx.AsyncClient
) -> None:
    before = await node_count(editor)
    answer = await editor.post(
        NODES,
        content=json.dumps(node(tag())),
        headers={"Content-Type": "application/json", "Referer": f"{live_server_default.url}/"},
    )
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert await node_count(editor) == before


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


BAD_BODIES = [
    pytest.param(_json(node(node_type="PLANET")), "node_type", id="unknown-node-type"),
    pytest.param(_json(node(node_type="fact")), "node_type", id="lowercase-node-type"),
    pytest.param(_json(node(momentum=-0.1)), "momentum", id="momentum-below-0"),
    pytest.param(_json(node(momentum=1.5)), "momentum", id="momentum-above-1"),
    pytest.param(_json(node(momentum="0.5")), "momentum", id="momentum-string"),
    pytest.param(_json(node(momentum=True)), "momentum", id="momentum-true"),
    pytest.param(_json(node(momentum=None)), "momentum", id="momentum-null"),
    pytest.param(
        b'{"content": "x", "node_type": "FACT", "momentum": 1e400}',
        "momentum",
        id="momentum-overflows-to-infinity",
    ),
    pytest.param(_json(node(content="")), "content", id="empty-content"),
    pytest.param(_json(node(content="   \n\t")), "content", id="blank-content"),
    pytest.param(_json(node(content="x" * 20_001)), "content", id="content-over-20000"),
    pytest.param(_json(node(content=42)), "content", id="content-number"),
    pytest.param(_json(node(content=["a"])), "content", id="content-list"),
    pytest.param(_json(node(content="a\x00b")), "content", id="content-with-nul"),
    pytest.param(_json(node(metadata=[1, 2])), "metadata", id="metadata-list"),
    pytest.param(_json(node(metadata="{}")), "metadata", id="metadata-string"),
    pytest.param(
        _json(node(metadata={"k": "x" * DEFAULTS["MAX_METADATA_BYTES"]})),
        "metadata",
        id="metadata-over-max-metadata-bytes",
    ),
    pytest.param(_json(node(colour="red")), "colour", id="unknown-field"),
    pytest.param(_json({"node_type": "FACT"}), "content", id="missing-content"),
    pytest.param(_json({"content": "x"}), "node_type", id="missing-node-type"),
    pytest.param(b'{"content": "x", "node_type": ', "__all__", id="malformed-json"),
    pytest.param(b"", "__all__", id="empty-body"),
    pytest.param(b'{"content": "\xff", "node_type": "FACT"}', "__all__", id="not-utf8"),
    pytest.param(_json("a string"), "__all__", id="json-string"),
    pytest.param(_json(42), "__all__", id="json-number"),
    pytest.param(_json(None), "__all__", id="json-null"),
    pytest.param(_json(True), "__all__", id="json-true"),
    pytest.param(
        b'{"content": "x", "node_type": "FACT", "momentum": NaN}', "__all__", id="nan-literal"
    ),
    pytest.param(
        b'{"content": "x", "node_type": "FACT", "momentum": Infinity}',
        "__all__",
        id="infinity-literal",
    ),
    pytest.param(
        b'{"content": "x", "node_type": "FACT", "momentum": -Infinity}',
        "__all__",
        id="minus-infinity-literal",
    ),
    pytest.param(_json([]), "__all__", id="empty-list"),
    pytest.param(_json([node(f"n{i}") for i in range(1001)]), "__all__", id="list-of-1001"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_nodes_create_rejects_bad_input_with_field_errors_and_saves_nothing(
    live_server_default: LiveServer, editor: httpx.AsyncClient, body: bytes, field: str
) -> None:
    before = await node_count(editor)
    answer = await post_raw(editor, live_server_default, body)
    assert answer.status_code == 400, answer.text[:500]
    errors = answer.json()["errors"]
    assert field in errors, errors
    assert errors[field]
    assert all(isinstance(message, str) and message for message in errors[field])
    assert await node_count(editor) == before


async def test_deeply_nested_json_and_nul_in_metadata_are_400s(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "editor") as editor:
        before = (await editor.get("/graph/api/stats/")).json()["nodes"]
        nested = await editor.post(
            "/graph/api/nodes/",
            content=b"[" * 100_000,
            headers={
                **csrf_headers(editor, live_server_default),
                "Content-Type": "application/json",
            },
        )
        assert nested.status_code == 400
        nul = await post_json(
            editor,
            live_server_default,
            "/graph/api/nodes/",
            {"content": "x", "node_type": "FACT", "metadata": {"k": "a\x00b"}},
        )
        assert nul.status_code == 400
        assert "metadata" in nul.json()["errors"]
        assert (await editor.get("/graph/api/stats/")).json()["nodes"] == before
