from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer


@pytest.fixture(scope="session")
def live_server_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """graphsite on the embedded default (SQLite, in-memory layer), shared by a module's tests."""
    server = LiveServer(Path(tmp_path_factory.mktemp("daphne-default")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start a server with its own settings.

    ``make_server(graphapp={...}, channel_backend="dotted.Layer")``
    """
    servers: list[LiveServer] = []

    def start(**options: object) -> LiveServer:
        server = LiveServer(tmp_path / f"server-{len(servers)}", **options)
        server.workdir.mkdir()
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
