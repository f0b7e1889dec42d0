"""graphapp's system checks, against the exact messages."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from graphapp.checks import check_cross_process_updates, check_deployment
from tests.live import LiveServer

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
    }
}


def test_check_is_silent_with_a_shared_layer() -> None:
    with override_settings(CHANNEL_LAYERS=REDIS, GRAPHAPP={"WATCH_INTERVAL": 0}):
        assert check_cross_process_updates() == []


def test_check_warns_when_in_memory_layer_cannot_see_other_processes() -> None:
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, GRAPHAPP={"WATCH_INTERVAL": 0}):
        (warning,) = check_cross_process_updates()
    assert warning.id == "graphapp.W001"
    expected = "WATCH_INTERVAL" if connection.vendor == "sqlite" else "not SQLite"
    assert expected in warning.msg
    assert "REDIS_URL" in (warning.hint or "")


def test_check_on_in_memory_layer_depends_on_watching_sqlite() -> None:
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, GRAPHAPP={"WATCH_INTERVAL": 0.25}):
        messages = check_cross_process_updates()
    # SQLite's data_version carries other processes' commits; nothing else does.
    assert [m.id for m in messages] == ([] if connection.vendor == "sqlite" else ["graphapp.W001"])


@pytest.mark.django_db(transaction=True)
def test_commands_say_when_their_changes_reach_no_server() -> None:
    stderr = StringIO()
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, GRAPHAPP={"WATCH_INTERVAL": 0}):
        call_command("graph_decay", "--hours", "1", stdout=StringIO(), stderr=stderr)
    assert "reach no open stream" in stderr.getvalue()
    quiet = StringIO()
    with override_settings(
        CHANNEL_LAYERS=REDIS if connection.vendor != "sqlite" else IN_MEMORY,
        GRAPHAPP={"WATCH_INTERVAL": 0.25},
    ):
        call_command("graph_decay", "--hours", "1", stdout=StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


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
