import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import pgcluster, services
from tests.live import APPLICATION, VIEW_APPLICATION, LiveServer


def pytest_configure(config: pytest.Config) -> None:
    if not services.enabled():
        return
    problem = services.unreachable()
    if problem and services.required():
        raise pytest.UsageError(
            f"GRAPHAPP_REQUIRE_SERVICES=1 but the services cannot be reached: {problem}"
        )
    config.stash[_SKIP_REASON] = problem


_SKIP_REASON = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = config.stash.get(_SKIP_REASON, "")
    if services.enabled() and reason:
        skip = pytest.mark.skip(reason=f"PostgreSQL + Redis run skipped: {reason}")
        for item in items:
            item.add_marker(skip)
    elif not services.enabled():
        skip = pytest.mark.skip(reason="needs PostgreSQL + Redis: runs with GRAPHAPP_SERVICES=1")
        for item in items:
            if "services" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _graphapp_threads_let_the_test_database_go(django_db_setup: None) -> Iterator[None]:
    """graphapp's worker threads keep their connections a few seconds after use;
    PostgreSQL cannot drop a database somebody is connected to."""
    yield
    from graphapp.worker import close_every_connection

    close_every_connection()


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """Snapshots this process publishes during the test (after earlier ones are done)."""
    from graphapp.publish import graph_stats_published, publisher

    assert publisher.wait(10), "an earlier publication did not finish"
    snapshots: list[dict[str, Any]] = []

    def receive(snapshot: dict[str, Any], **kwargs: object) -> None:
        snapshots.append(snapshot)

    graph_stats_published.connect(receive)
    yield snapshots
    graph_stats_published.disconnect(receive)


class Servers:
    """Starts test servers: on the embedded default, or on PostgreSQL and Redis
    (a scratch database and a Redis key prefix of their own) in the services run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[LiveServer] = []
        self._cleanup = contextlib.ExitStack()

    def backing(self, services_run: bool) -> dict[str, Any]:
        if not services_run:
            return {}
        return {
            "database_url": self._cleanup.enter_context(services.scratch_database()),
            "redis_url": services.REDIS_URL,
            "redis_prefix": f"graphapp-test-{uuid.uuid4().hex[:8]}",
        }

    def start(
        self,
        count: int = 1,
        *,
        services_run: bool | None = None,
        each: Sequence[dict[str, Any]] = (),
        **options: Any,
    ) -> list[LiveServer]:
        """``count`` servers sharing one database and one layer (a cluster);
        ``each[i]``, if given, adds options of server i's own (``clock_shift``, say)."""
        shared = self.backing(services.enabled() if services_run is None else services_run)
        shared |= options
        cluster: list[LiveServer] = []
        for index in range(count):
            workdir = self.workdir / f"server-{len(self.started)}"
            workdir.mkdir(parents=True)
            if index and "database_url" not in shared:
                shared["database_url"] = f"sqlite:///{cluster[0].workdir / 'db.sqlite3'}"
            server = LiveServer(workdir, **shared, **(each[index] if index < len(each) else {}))
            self.started.append(server)
            server.start(setup=index == 0)
            cluster.append(server)
        return cluster

    def stop(self) -> None:
        for server in self.started:
            server.stop()
        self._cleanup.close()


@pytest.fixture(scope="session")
def live_server_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """graphsite as configured for this run, shared by the tests that only add to it."""
    servers = Servers(tmp_path_factory.mktemp("daphne-default"))
    try:
        yield servers.start()[0]
    finally:
        servers.stop()


@pytest.fixture
def draining() -> Iterator[None]:
    """This process draining, as after a SIGTERM (graphapp.shutdown)."""
    from graphapp.limits import stream_limits

    stream_limits.draining = True
    try:
        yield
    finally:
        stream_limits.draining = False


@pytest.fixture(scope="session")
def live_server_view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Like live_server_default, with the stream served by the Django view."""
    servers = Servers(tmp_path_factory.mktemp("daphne-view"))
    try:
        yield servers.start(application=VIEW_APPLICATION)[0]
    finally:
        servers.stop()


@pytest.fixture(params=[APPLICATION, VIEW_APPLICATION], ids=["asgi", "view"])
def stream_application(request: pytest.FixtureRequest) -> str:
    """Each path of the stream in turn: graphsite's (graphapp.asgi in front of
    Django) and the Django view's; pass it to make_server(application=...)."""
    application: str = request.param
    return application


@pytest.fixture(params=["live_server_default", "live_server_view"], ids=["asgi", "view"])
def stream_server(request: pytest.FixtureRequest) -> LiveServer:
    """The shared server of each path of the stream in turn."""
    server: LiveServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def make_server(servers: Servers) -> Callable[..., LiveServer]:
    """Start a server with its own settings.

    ``make_server(graphapp={...}, channel_backend="dotted.Layer")``
    """

    def start(**options: Any) -> LiveServer:
        return servers.start(**options)[0]

    return start


@pytest.fixture
def own_postgres() -> Iterator[pgcluster.PostgresCluster]:
    """A PostgreSQL cluster of the test's own (tests/pgcluster.py), started; the
    test may stop and start it. Skipped without PostgreSQL's binaries, unless
    GRAPHAPP_REQUIRE_SERVICES=1."""
    if pgcluster.binaries() is None:
        reason = "no PostgreSQL binaries in /usr/lib/postgresql/*/bin"
        if services.required():
            pytest.fail(f"GRAPHAPP_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    with pgcluster.postgres_cluster() as cluster:
        yield cluster
