"""graphapp's system checks, against the exact messages."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection
from django.test import override_settings

from graphapp import checks, schema
from graphapp.checks import (
    check_cross_process_updates,
    check_deployment,
    sqlite_defers,
    unchecked_connections,
)
from tests.live import LiveServer

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
    }
}
SHORT_EXPIRY = {
    "default": {**REDIS["default"], "CONFIG": {**REDIS["default"]["CONFIG"], "group_expiry": 120}}
}
PUBSUB = {
    "default": {**REDIS["default"], "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}
}


@pytest.fixture
def database_without_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a database graphapp's migrations keep no version on (neither
    PostgreSQL nor SQLite): only the vendor list decides."""
    monkeypatch.setattr(schema, "VENDORS", frozenset())


@pytest.mark.usefixtures("database_without_versions")
def test_check_is_silent_with_a_shared_layer() -> None:
    with override_settings(CHANNEL_LAYERS=REDIS):
        assert check_cross_process_updates() == []


@pytest.mark.usefixtures("database_without_versions")
def test_check_warns_when_in_memory_layer_cannot_see_other_processes() -> None:
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        (warning,) = check_cross_process_updates()
    assert warning.id == "graphapp.W001"
    assert f"{connection.vendor} keeps no graph version" in warning.msg
    assert "REDIS_URL" in (warning.hint or "")


def test_check_on_in_memory_layer_is_silent_where_the_database_keeps_a_version() -> None:
    # Every server sees other processes' commits through the graph's version.
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        assert check_cross_process_updates() == []


@pytest.mark.django_db(transaction=True)
def test_commands_say_when_their_changes_reach_no_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet = StringIO()
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        call_command("graph_decay", "--hours", "1", stdout=StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""
    monkeypatch.setattr(schema, "VENDORS", frozenset())
    stderr = StringIO()
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        call_command("graph_decay", "--hours", "1", stdout=StringIO(), stderr=stderr)
    assert "keeps no graph version" in stderr.getvalue()


def test_deployment_check_warns_of_a_group_expiry_that_keeps_dead_members_for_a_day() -> None:
    with override_settings(CHANNEL_LAYERS=REDIS):
        (warning,) = check_deployment()
    assert warning.id == "graphapp.W004"
    assert "86400 s" in warning.msg
    assert "group_expiry" in (warning.hint or "")
    with override_settings(CHANNEL_LAYERS=SHORT_EXPIRY):
        assert check_deployment() == []


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


@pytest.fixture
def installed_redis_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Makes importlib.metadata report redis-py at the version a test names: that
    distribution's metadata, ahead of the real one on sys.path."""

    def install(version: str) -> None:
        info = tmp_path / f"redis-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: redis\nVersion: {version}\n")
        monkeypatch.syspath_prepend(tmp_path)

    return install


@pytest.mark.parametrize("version", ["8.0.0", "8.1.0", "9.0.0b1"])
def test_deployment_check_warns_of_a_redis_py_that_times_out_the_layers_receive(
    installed_redis_py: Callable[[str], None], version: str
) -> None:
    installed_redis_py(version)
    with override_settings(CHANNEL_LAYERS=SHORT_EXPIRY):
        (warning,) = check_deployment()
    assert warning.id == "graphapp.W005"
    assert f"redis-py {version} is installed under CHANNEL_LAYERS['default']" in warning.msg
    assert "redis/redis-py#4091" in warning.msg
    assert 'pip install "redis<8"' in (warning.hint or "")


@pytest.mark.parametrize(
    ("version", "layers"),
    [
        ("7.4.1", SHORT_EXPIRY),
        ("5.0.0", SHORT_EXPIRY),
        ("8.1.0", IN_MEMORY),
        ("8.1.0", PUBSUB),  # it polls with short reads: the time-out never ends one
    ],
)
def test_deployment_check_is_silent_about_redis_py_below_8_or_without_its_blocking_layer(
    installed_redis_py: Callable[[str], None], version: str, layers: dict[str, Any]
) -> None:
    installed_redis_py(version)
    with override_settings(CHANNEL_LAYERS=layers):
        assert check_deployment() == []


def test_deployment_check_is_silent_without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    # channels-redis cannot import then: other checks and the layer itself say so.
    monkeypatch.setattr(checks, "redis_py_version", lambda: None)
    with override_settings(CHANNEL_LAYERS=SHORT_EXPIRY):
        assert check_deployment() == []


def test_deployment_check_is_silent_for_graphsite() -> None:
    assert check_deployment() == []


def test_deployment_check_wants_an_asgi_application() -> None:
    with override_settings(ASGI_APPLICATION=None):
        (error,) = check_deployment()
    assert error.id == "graphapp.E001"
    assert "ASGI_APPLICATION" in error.msg


def test_deployment_check_wants_the_configured_channel_layer() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        assert ids(check_deployment()) == ["graphapp.E003"]
    with override_settings(GRAPHAPP={"CHANNEL_LAYER": "elsewhere"}):
        (error,) = check_deployment()
    assert "'elsewhere'" in error.msg


def test_deployment_check_reports_a_bad_graphapp_setting_instead_of_crashing() -> None:
    with override_settings(GRAPHAPP={"HEARTBEAT": -1}):
        (error,) = check_deployment()
        assert check_cross_process_updates() == []
    assert error.id == "graphapp.E002"
    assert "HEARTBEAT" in error.msg


def test_deployment_check_warns_without_daphne_and_with_gzip(settings: Any) -> None:
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "daphne"]
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *settings.MIDDLEWARE]
    messages = check_deployment()
    assert ids(messages) == ["graphapp.W002", "graphapp.W003"]
    assert "GZipMiddleware" in messages[1].msg


def test_a_wrong_setting_stops_the_process_at_start_up(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, graphapp={"MAX_CONNECTIONS": 0})

    done = server.manage("check")

    assert done.returncode != 0
    assert "GraphappConfigError: settings.GRAPHAPP['MAX_CONNECTIONS']" in done.stderr
    assert "must be a whole number >= 1, not 0" in done.stderr


SQLITE = "django.db.backends.sqlite3"


@pytest.mark.parametrize(
    ("database", "defers"),
    [
        ({"ENGINE": SQLITE}, True),
        ({"ENGINE": SQLITE, "OPTIONS": {"transaction_mode": None}}, True),
        ({"ENGINE": SQLITE, "OPTIONS": {"transaction_mode": "DEFERRED"}}, True),
        ({"ENGINE": SQLITE, "OPTIONS": {"transaction_mode": "immediate"}}, False),
        ({"ENGINE": SQLITE, "OPTIONS": {"transaction_mode": "EXCLUSIVE"}}, False),
        ({"ENGINE": "django.db.backends.postgresql"}, False),
    ],
)
def test_sqlite_defers_tells_which_databases_w006_warns_of(
    database: dict[str, Any], defers: bool
) -> None:
    assert sqlite_defers(database) is defers


def test_deployment_check_warns_of_sqlite_opening_transactions_deferred() -> None:
    database = settings.DATABASES[DEFAULT_DB_ALIAS]
    if database["ENGINE"] != SQLITE:
        pytest.skip("SQLite only: this run's database is another")
    # Not override_settings: Django warns against replacing DATABASES in a test.
    options = database.setdefault("OPTIONS", {})
    mode = options.pop("transaction_mode", None)
    try:
        warnings = [message for message in check_deployment() if message.id == "graphapp.W006"]
    finally:
        if mode is not None:
            options["transaction_mode"] = mode
    (warning,) = warnings
    assert "'database is locked'" in warning.msg
    assert '"transaction_mode"] = "IMMEDIATE"' in (warning.hint or "")


POSTGRESQL = "django.db.backends.postgresql"


@pytest.mark.parametrize(
    ("database", "warned"),
    [
        ({"ENGINE": POSTGRESQL, "OPTIONS": {"pool": {"max_size": 20}}}, "psycopg pool"),
        ({"ENGINE": POSTGRESQL, "OPTIONS": {"pool": True}}, "psycopg pool"),
        ({"ENGINE": POSTGRESQL, "CONN_MAX_AGE": 60}, "CONN_MAX_AGE=60"),
        ({"ENGINE": POSTGRESQL, "CONN_MAX_AGE": None}, "CONN_MAX_AGE=None"),
        ({"ENGINE": POSTGRESQL, "OPTIONS": {"pool": True}, "CONN_HEALTH_CHECKS": True}, ""),
        ({"ENGINE": POSTGRESQL, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}, ""),
        ({"ENGINE": POSTGRESQL, "CONN_MAX_AGE": 0}, ""),  # a new connection per request
        ({"ENGINE": SQLITE, "CONN_MAX_AGE": None}, ""),  # a file: nothing restarts
    ],
)
def test_unchecked_connections_tells_which_databases_w007_warns_of(
    database: dict[str, Any], warned: str
) -> None:
    reason = unchecked_connections(database)
    assert (warned in reason) if warned else reason == ""


def test_deployment_check_warns_of_kept_connections_that_nobody_checks() -> None:
    database = settings.DATABASES[DEFAULT_DB_ALIAS]
    if database["ENGINE"] == SQLITE:
        pytest.skip("a database server only: this run's database is SQLite")
    # Not override_settings: Django warns against replacing DATABASES in a test.
    kept = database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"]
    database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"] = 60, False
    try:
        warnings = [message for message in check_deployment() if message.id == "graphapp.W007"]
        database["CONN_HEALTH_CHECKS"] = True
        assert not [message for message in check_deployment() if message.id == "graphapp.W007"]
    finally:
        database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"] = kept
    (warning,) = warnings
    assert "CONN_MAX_AGE=60" in warning.msg
    assert '["CONN_HEALTH_CHECKS"] = True' in (warning.hint or "")
