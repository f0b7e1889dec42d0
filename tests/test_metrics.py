"""GET /graph/metrics/: this process's counters in Prometheus' form, for staff only.

The counters are driven for real: publications through the publisher, refused
connects through the stream view's limits, streams over real sockets to daphne.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, override_settings
from prometheus_client.parser import text_string_to_metric_families

from graphapp import snapshots
from graphapp.durations import Durations
from graphapp.limits import StreamLimits, StreamRefused
from graphapp.metrics import exposition
from graphapp.models import Node
from graphapp.publish import publisher
from tests.live import ROOT, LiveServer, create_node, logged_in, stream

db = pytest.mark.django_db(transaction=True)

FAILING_LAYER = {"default": {"BACKEND": "tests.layers.UnreachableChannelLayer"}}
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
# Sent, failed, and timed from commit to send.
PUBLICATIONS = (
    "graphapp_publications_total",
    "graphapp_publication_failures_total",
    "graphapp_publication_lag_seconds_count",
)


def samples(text: str) -> dict[str, float]:
    """Every sample of an exposition, by name and labels:
    ``graphapp_connects_refused_total{reason="per_user"}``."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def scrape_here() -> dict[str, float]:
    return samples(exposition("")[0].decode())


def grown(before: dict[str, float], after: dict[str, float], *names: str) -> list[float]:
    return [after[name] - before[name] for name in names]


def fact(content: str) -> Node:
    return Node.objects.create(content=content, node_type="FACT", momentum=0.9)


def make_user(username: str, *, staff: bool = False, viewer: bool = False) -> Any:
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, password="unused", is_staff=staff)
    if viewer:
        user.user_permissions.add(Permission.objects.get(codename="view_node"))
    return user


async def client_of(username: str, **kind: bool) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(await sync_to_async(make_user)(username, **kind))
    return client


@pytest.fixture
async def _close_connections() -> Any:
    """The connections the clients' logins opened in asgiref's sync thread are
    closed afterwards (PostgreSQL drops no database somebody is connected to)."""
    yield
    await sync_to_async(connections.close_all)()


# -- the tallies -------------------------------------------------------------


def test_durations_count_each_observation_in_the_first_bucket_that_holds_it() -> None:
    durations = Durations((0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):  # a bound holds its own value (le)
        durations.observe(seconds)
    counts, total = durations.read()
    assert counts == [2, 3, 4]  # cumulative: <= 0.01, <= 0.1, all
    assert total == pytest.approx(3.065)


def test_limits_count_each_refusal_by_its_reason() -> None:
    limits = StreamLimits()
    assert limits.refused == {"draining": 0, "per_user": 0, "per_process": 0}
    with override_settings(GRAPHAPP={"MAX_CONNECTIONS": 2, "MAX_CONNECTIONS_PER_USER": 1}):
        limits.acquire("u")
        for user in ("u", "u"):
            with pytest.raises(StreamRefused):
                limits.acquire(user)
        limits.acquire("v")
        with pytest.raises(StreamRefused):
            limits.acquire("w")
        limits.draining = True
        with pytest.raises(StreamRefused):
            limits.acquire("x")
    assert limits.refused == {"draining": 1, "per_user": 2, "per_process": 1}


# -- the collector reads the real counters -----------------------------------


@db
def test_publications_their_lag_and_the_snapshots_are_reported(
    published: list[dict[str, Any]],
) -> None:
    before = scrape_here()
    for i in range(3):
        fact(f"published {i}")
        assert publisher.flush(10)
    after = scrape_here()

    assert len(published) == 3
    assert grown(before, after, *PUBLICATIONS) == [3, 0, 3]
    assert grown(before, after, 'graphapp_publication_lag_seconds_bucket{le="+Inf"}') == [3]
    assert after["graphapp_publications_total"] == publisher.published
    assert (
        after["graphapp_publication_lag_seconds_sum"]
        > before["graphapp_publication_lag_seconds_sum"]
    )
    computed = after["graphapp_snapshots_total"] - before["graphapp_snapshots_total"]
    assert computed >= 3
    assert after["graphapp_snapshots_total"] == snapshots.taken
    assert grown(before, after, "graphapp_snapshot_seconds_count") == [computed]
    assert after["graphapp_snapshot_seconds_sum"] > before["graphapp_snapshot_seconds_sum"]


@db
def test_publications_the_layer_refused_are_failures_with_no_lag(
    published: list[dict[str, Any]],
) -> None:
    before = scrape_here()
    with override_settings(CHANNEL_LAYERS=FAILING_LAYER):
        for i in range(2):
            fact(f"not sent {i}")
            assert not publisher.flush(10)
    after = scrape_here()
    assert grown(before, after, *PUBLICATIONS) == [0, 2, 0]
    fact("after the outage")
    assert publisher.flush(10)


# -- the endpoint ------------------------------------------------------------


@db
@pytest.mark.usefixtures("_close_connections")
async def test_metrics_are_for_staff_as_health_is() -> None:
    clients = {
        "anonymous": AsyncClient(),
        "viewer": await client_of("metrics-viewer", viewer=True),
        "staff": await client_of("metrics-staff", staff=True),
    }
    answers = {who: await client.get("/graph/metrics/") for who, client in clients.items()}
    for who, client in clients.items():
        health = await client.get("/graph/api/health/")
        assert answers[who].status_code == health.status_code, who
    assert answers["anonymous"].status_code == 403
    assert answers["anonymous"].json() == {"error": "Staff only."}
    assert answers["viewer"].status_code == 403

    staff = answers["staff"]
    assert staff.status_code == 200
    assert staff["Content-Type"] == TEXT_FORMAT
    assert "no-cache" in staff["Cache-Control"]
    reported = samples(staff.content.decode())
    assert reported["graphapp_open_streams"] == 0
    assert "process_start_time_seconds" in reported  # the process's own, for restarts
    assert (await clients["staff"].post("/graph/metrics/")).status_code == 405


@db
@pytest.mark.usefixtures("_close_connections")
async def test_metrics_speak_openmetrics_when_asked() -> None:
    staff = await client_of("metrics-staff", staff=True)
    answer = await staff.get(
        "/graph/metrics/", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert answer.content.endswith(b"# EOF\n")


@db
@pytest.mark.usefixtures("_close_connections")
async def test_without_prometheus_client_metrics_answer_501_and_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a project without the extra sees: the import itself fails.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "graphapp.metrics")
    staff = await client_of("metrics-staff", staff=True)
    answer = await staff.get("/graph/metrics/")
    assert answer.status_code == 501
    assert "graphapp[metrics]" in answer.json()["error"]
    assert (await AsyncClient().get("/graph/metrics/")).status_code == 403  # checked first


@db
@pytest.mark.usefixtures("_close_connections")
@override_settings(GRAPHAPP={"MAX_CONNECTIONS": 2, "MAX_CONNECTIONS_PER_USER": 1})
async def test_connects_the_stream_view_refuses_are_counted_by_reason() -> None:
    first = await client_of("metrics-first", viewer=True)
    second = await client_of("metrics-second", viewer=True)
    third = await client_of("metrics-third", viewer=True)
    staff = await client_of("metrics-staff", staff=True)
    before = samples((await staff.get("/graph/metrics/")).content.decode())
    held = [await first.get("/graph/events/")]
    try:
        assert (await first.get("/graph/events/")).status_code == 429
        held.append(await second.get("/graph/events/"))
        assert [response.status_code for response in held] == [200, 200]
        assert (await third.get("/graph/events/")).status_code == 503
        assert (await second.get("/graph/events/")).status_code == 429
    finally:
        for response in held:
            response.close()
    after = samples((await staff.get("/graph/metrics/")).content.decode())
    reasons = ("per_user", "per_process", "draining")
    names = [f'graphapp_connects_refused_total{{reason="{reason}"}}' for reason in reasons]
    assert grown(before, after, *names) == [2, 1, 0]


# -- a real server -----------------------------------------------------------


async def scrape(admin: httpx.AsyncClient) -> dict[str, float]:
    answer = await admin.get("/graph/metrics/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == TEXT_FORMAT
    return samples(answer.text)


@pytest.mark.e2e
async def test_a_scrape_of_daphne_counts_its_open_streams_refusals_and_publications(
    make_server: Any,
) -> None:
    server: LiveServer = make_server(graphapp={"MAX_CONNECTIONS": 3, "MAX_CONNECTIONS_PER_USER": 2})
    async with (
        logged_in(server, "viewer") as viewer,
        logged_in(server, "editor") as editor,
        logged_in(server, "admin") as admin,
    ):
        idle = await scrape(admin)
        assert idle["graphapp_open_streams"] == 0
        async with stream(viewer) as one, stream(viewer) as two, stream(editor) as three:
            for events in (one, two, three):
                await events.next_stats()
            assert (await viewer.get("/graph/events/")).status_code == 429
            assert (await admin.get("/graph/events/")).status_code == 503
            await create_node(editor, server)
            await three.current()  # published, and arrived
            busy = await scrape(admin)
        assert busy["graphapp_open_streams"] == 3
        assert busy['graphapp_connects_refused_total{reason="per_user"}'] == 1
        assert busy['graphapp_connects_refused_total{reason="per_process"}'] == 1
        assert busy["graphapp_publications_total"] >= 1
        assert busy["graphapp_publication_lag_seconds_count"] == busy["graphapp_publications_total"]
        assert busy["graphapp_snapshot_seconds_count"] >= 1

        for _ in range(100):  # the streams' ends reach the hub soon after the sockets'
            if (await scrape(admin))["graphapp_open_streams"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await scrape(admin))["graphapp_open_streams"] == 0


def readme_session_recipe() -> list[str]:
    """The arguments to manage.py of the README's command that prints a session
    cookie for Prometheus."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r'python manage.py (shell [^"]*)"\n(.*?)" > ', readme, re.DOTALL)
    assert match, "the README lost its recipe for Prometheus' session"
    return [*match.group(1).split(), match.group(2)]


@pytest.mark.e2e
async def test_the_readmes_session_for_prometheus_lets_it_scrape(
    live_server_default: LiveServer,
) -> None:
    server = live_server_default
    made = server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.get_or_create(username='prometheus', is_staff=True)",
    )
    assert made.returncode == 0, made.stderr
    printed = server.manage(*readme_session_recipe())
    assert printed.returncode == 0, printed.stderr
    cookie = printed.stdout.strip()
    assert cookie.startswith("sessionid=")
    async with httpx.AsyncClient(base_url=server.url, headers={"Cookie": cookie}) as prometheus:
        answer = await prometheus.get("/graph/metrics/")
        assert answer.status_code == 200
        assert "graphapp_open_streams" in samples(answer.text)
        assert (await prometheus.get("/graph/api/stats/")).status_code == 403  # staff, no more
