"""The live page and the admin's live panel, as served (HTML, static files, access)."""

from __future__ import annotations

import httpx
import pytest

from tests.live import LiveServer, logged_in, post_json

pytestmark = pytest.mark.e2e


async def test_live_page_sends_anonymous_users_to_the_login_page(
    live_server_default: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server_default.url) as anonymous:
        answer = await anonymous.get("/graph/live/")
    assert answer.status_code == 302
    assert answer.headers["location"] == "/accounts/login/?next=/graph/live/"


async def test_live_page_is_forbidden_without_the_view_permission(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "nobody") as nobody:
        assert (await nobody.get("/graph/live/")).status_code == 403


async def test_live_page_carries_the_panel_and_its_script(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "viewer") as viewer:
        page = await viewer.get("/graph/live/")
        assert page.status_code == 200
        assert "no-cache" in page.headers["cache-control"]
        assert 'data-events-url="/graph/events/"' in page.text
        assert 'src="/static/graphapp/panel.js"' in page.text
        assert 'data-worker-url="/static/graphapp/stream.js"' in page.text
        assert "Manage nodes in the admin" not in page.text  # not staff
        assert "data-admin-url" not in page.text  # the feed links to the admin for staff only
        # Nothing from another host: no CDN, no web fonts.
        assert "//" not in page.text.replace("http://www.w3.org", "").replace("<!--", "")
        script = await viewer.get("/static/graphapp/stream.js")
        assert script.status_code == 200
        assert "new EventSource(" in script.text
        assert "SharedWorkerGlobalScope" in script.text
        assert (await viewer.get("/static/graphapp/panel.js")).status_code == 200
        assert (await viewer.get("/static/graphapp/panel.css")).status_code == 200


async def test_admin_node_list_shows_the_live_panel(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        created = await post_json(
            admin, live_server_default, "/graph/api/nodes/", {"content": "x", "node_type": "CODE"}
        )
        assert created.status_code == 201
        page = await admin.get("/admin/graphapp/node/")
        assert page.status_code == 200
        assert "data-graphapp-panel" in page.text
        assert 'src="/static/graphapp/panel.js"' in page.text
        for column in ("column-excerpt", "column-tier", "column-momentum", "column-degree"):
            assert column in page.text
        assert (await admin.get("/static/admin/css/base.css")).status_code == 200
        filtered = await admin.get("/admin/graphapp/node/?tier=HOT&node_type__exact=FACT")
        assert filtered.status_code == 200


async def test_admin_index_shows_the_live_panel_to_those_who_may_view(
    live_server_default: LiveServer,
) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        page = await admin.get("/admin/")
        assert page.status_code == 200
        assert "data-graphapp-panel" in page.text
        assert 'data-admin-url="/admin/graphapp/node/0/change/"' in page.text
        assert 'id="content-main"' in page.text  # the admin's own index is still there


async def test_admin_filters_carry_live_count_slots(live_server_default: LiveServer) -> None:
    async with logged_in(live_server_default, "admin") as admin:
        page = (await admin.get("/admin/graphapp/node/")).text
    for key in ("tiers.HOT", "tiers.WARM", "tiers.COLD", "types.FACT", "types.ENTITY"):
        assert f'data-live-count="{key}"' in page, key
    assert 'class="graphapp-swatch graphapp-key-hot"' in page
