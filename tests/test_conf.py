"""graphapp.conf.get_config: settings.GRAPHAPP merged over the defaults, validated, cached."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from graphapp.conf import DEFAULTS, get_config
from graphapp.exceptions import GraphappConfigError


def test_get_config_defaults():
    with override_settings(GRAPHAPP={}):
        config = get_config()

    assert config == {
        "GROUP": "graphapp.stats",
        "CHANNEL_LAYER": "default",
        "COALESCE_WINDOW": 0.1,
        "HEARTBEAT": 15.0,
        "RETRY": 3000,
        "CHANGE_LIMIT": 20,
        "SEND_TIMEOUT": 5.0,
        "VERIFY_INTERVAL": 1.0,
        "VERIFY_TIMEOUT": 5.0,
        "REVALIDATE_INTERVAL": 300.0,
        "VIEW_PERMISSION_CHECK": "graphapp.permissions.can_view_graph",
        "ADD_PERMISSION_CHECK": "graphapp.permissions.can_add_node",
        "AUTHENTICATOR": "graphapp.asgi.session_user",
        "MAX_CONNECTIONS": 10_000,
        "MAX_CONNECTIONS_PER_USER": 20,
        "SHUTDOWN_TIMEOUT": 3.0,
        "RECONNECT_RATE": 1000,
        "EDGES": True,
        "ENTANGLEMENT": True,
        "HISTORY_WINDOW": 86_400.0,
        "HISTORY_POINTS": 300,
        "CHANGE_LOG_RETENTION": 3_600.0,
        "CHANGE_LOG_LIMIT": 10_000,
        "MAX_METADATA_BYTES": 65_536,
        "MAX_LIST_BYTES": 8_388_608,
        "MAX_IMPORT_BYTES": 16 * 1024 * 1024,
        "TOKEN_MAX_AGE": 120.0,
        "TOKEN_IN_QUERY": False,
        "CORS_ORIGINS": [],
    }


def test_get_config_defaults_when_the_setting_is_absent(settings):
    del settings.GRAPHAPP

    assert get_config() == DEFAULTS


def test_get_config_overrides_merge_over_the_defaults():
    with override_settings(GRAPHAPP={"HEARTBEAT": 30, "GROUP": "wall"}):
        config = get_config()

    assert config["HEARTBEAT"] == 30
    assert config["GROUP"] == "wall"
    # Keys not overridden keep their defaults.
    assert config["RETRY"] == 3000
    assert config["CHANNEL_LAYER"] == "default"
    assert set(config) == set(DEFAULTS)


def test_get_config_does_not_change_the_defaults():
    with override_settings(GRAPHAPP={"RETRY": 10}):
        assert get_config()["RETRY"] == 10

    assert DEFAULTS["RETRY"] == 3000


def test_get_config_unknown_key_is_named():
    with (
        override_settings(GRAPHAPP={"HEARTBEAT": 20.0, "HEARTBEET": 20.0}),
        pytest.raises(GraphappConfigError, match="HEARTBEET") as excinfo,
    ):
        get_config()

    assert excinfo.value.key == "HEARTBEET"
    assert "unknown" in str(excinfo.value)


def test_get_config_error_is_improperly_configured():
    # Django reports ImproperlyConfigured at start-up; graphapp's error must be one.
    with override_settings(GRAPHAPP={"NOPE": 1}), pytest.raises(ImproperlyConfigured):
        get_config()


def test_get_config_setting_that_is_not_a_dict():
    with override_settings(GRAPHAPP=[("GROUP", "x")]), pytest.raises(GraphappConfigError):
        get_config()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HEARTBEAT", -1.0),
        ("HEARTBEAT", 0),
        ("HEARTBEAT", "15"),
        ("HEARTBEAT", True),
        ("COALESCE_WINDOW", -0.1),
        ("SEND_TIMEOUT", None),
        ("RETRY", True),
        ("RETRY", -1),
        ("RETRY", 2.5),
        ("RETRY", "3000"),
        ("GROUP", ""),
        ("GROUP", None),
        ("CHANNEL_LAYER", ""),
        ("VIEW_PERMISSION_CHECK", 42),
        ("AUTHENTICATOR", ""),
        ("VERIFY_INTERVAL", -0.5),
        ("REVALIDATE_INTERVAL", 0),
        ("VERIFY_INTERVAL", False),
        ("VERIFY_INTERVAL", 0),
        ("MAX_CONNECTIONS", 0),
        ("MAX_CONNECTIONS", 10.5),
        ("MAX_CONNECTIONS_PER_USER", True),
        ("MAX_CONNECTIONS_PER_USER", -1),
        ("MAX_IMPORT_BYTES", 0),
        ("MAX_IMPORT_BYTES", 1e9),
        ("SHUTDOWN_TIMEOUT", -1),
        ("SHUTDOWN_TIMEOUT", "3"),
        ("RECONNECT_RATE", 0),
        ("RECONNECT_RATE", 0.5),
        ("EDGES", 1),
        ("ENTANGLEMENT", "no"),
        ("CHANGE_LIMIT", 0),
        ("CHANGE_LIMIT", 2.5),
        ("CHANGE_LIMIT", True),
        ("MAX_METADATA_BYTES", 0),
        ("MAX_METADATA_BYTES", 64.5),
        ("MAX_LIST_BYTES", "8M"),
        ("MAX_LIST_BYTES", True),
        ("MAX_LIST_BYTES", 1023),
        ("TOKEN_MAX_AGE", 0),
        ("TOKEN_IN_QUERY", "yes"),
        ("CORS_ORIGINS", "https://app.example.com"),
        ("CORS_ORIGINS", ["app.example.com"]),
        ("CORS_ORIGINS", ["https://app.example.com/"]),
        ("CORS_ORIGINS", ["https://app.example.com/path"]),
        ("CORS_ORIGINS", ["ftp://app.example.com"]),
        ("CORS_ORIGINS", [None]),
        ("CORS_ORIGINS", ["*"]),
    ],
)
def test_get_config_rejects_wrong_types_and_values(key, value):
    with (
        override_settings(GRAPHAPP={key: value}),
        pytest.raises(GraphappConfigError, match=key) as excinfo,
    ):
        get_config()

    assert excinfo.value.key == key


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HEARTBEAT", 1),
        ("COALESCE_WINDOW", 0.001),
        ("RETRY", 0),
        ("GROUP", "g"),
        ("MAX_CONNECTIONS_PER_USER", 1),
        ("MAX_IMPORT_BYTES", 1),
        ("SHUTDOWN_TIMEOUT", 0),
        ("ENTANGLEMENT", False),
        ("MAX_METADATA_BYTES", 1),
        ("MAX_LIST_BYTES", 1024),
        ("TOKEN_MAX_AGE", 1),
        ("CORS_ORIGINS", ["https://app.example.com", "http://localhost:8001"]),
    ],
)
def test_get_config_accepts_edge_values(key, value):
    with override_settings(GRAPHAPP={key: value}):
        assert get_config()[key] == value


def test_get_config_entanglement_needs_the_edges():
    with (
        override_settings(GRAPHAPP={"EDGES": False}),
        pytest.raises(GraphappConfigError, match="EDGES is False") as excinfo,
    ):
        get_config()

    assert excinfo.value.key == "ENTANGLEMENT"
    with override_settings(GRAPHAPP={"EDGES": False, "ENTANGLEMENT": False}):
        assert get_config()["EDGES"] is False


def test_get_config_is_cached_while_the_setting_is_unchanged():
    with override_settings(GRAPHAPP={"GROUP": "cached"}):
        assert get_config() is get_config()


def test_get_config_cache_is_cleared_when_the_setting_changes():
    with override_settings(GRAPHAPP={"GROUP": "first"}):
        assert get_config()["GROUP"] == "first"
        with override_settings(GRAPHAPP={"GROUP": "second"}):
            assert get_config()["GROUP"] == "second"
        # Leaving the inner override is a change too.
        assert get_config()["GROUP"] == "first"


def test_get_config_bad_setting_that_is_gone_leaves_nothing_behind():
    with override_settings(GRAPHAPP={"RETRY": 1}):
        assert get_config()["RETRY"] == 1
        with override_settings(GRAPHAPP={"RETRY": -5}), pytest.raises(GraphappConfigError):
            get_config()
        assert get_config()["RETRY"] == 1


def test_get_config_cache_is_cleared_by_the_pytest_settings_fixture(settings):
    settings.GRAPHAPP = {"GROUP": "one"}
    assert get_config()["GROUP"] == "one"

    settings.GRAPHAPP = {"GROUP": "two"}

    assert get_config()["GROUP"] == "two"
