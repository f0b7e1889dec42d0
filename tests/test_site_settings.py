"""graphsite's settings from the environment: what production refuses, what
DEBUG follows, and ``check --deploy`` in the configuration docs/deployment.md gives."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.core.checks.security.base import _check_secret_key

from graphsite.environment import weak_secret_key
from tests.live import ROOT, LiveServer

STRONG_KEY = secrets.token_urlsafe(50)
# What graphsite's settings read, cleared: each case says all it sets.
SITE_VARIABLES = re.compile(r"^(DJANGO_|DATABASE_|REDIS_)")
SETTINGS = [
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]
PRINT_SETTINGS = (
    "import json; from graphsite import settings as s; "
    f"print(json.dumps({{name: getattr(s, name) for name in {SETTINGS!r}}}))"
)


def site_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SITE_VARIABLES.match(k)}
    site = {"PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "graphsite.settings"}
    return env | site | variables


def load(**variables: str) -> subprocess.CompletedProcess[str]:
    """graphsite's settings imported in a fresh process with ``variables``."""
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=site_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_with(**variables: str) -> dict[str, object]:
    done = load(**variables)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


def refusal(**variables: str) -> str:
    """The last line of what graphsite says when it refuses ``variables``."""
    done = load(**variables)
    assert done.returncode != 0, done.stdout
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "key",
    [
        "x",
        "a" * 49 + "b",  # 50 characters, 2 different
        "abcde" * 9 + "abcd",  # 49 characters
        "django-insecure-" + secrets.token_urlsafe(50),
        STRONG_KEY,
        "abcde" * 10,
    ],
)
def test_a_weak_secret_key_is_what_djangos_own_check_calls_weak(key: str) -> None:
    assert weak_secret_key(key) is not _check_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["x", "a" * 60, "django-insecure-" + secrets.token_urlsafe(50)],
)
def test_production_refuses_a_weak_secret_key(key: str) -> None:
    message = refusal(DJANGO_SECRET_KEY=key, DJANGO_DEBUG="0")
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY")
    assert "at least 50 characters, 5 of them different" in message
    # A key of one's own means production by default: DEBUG off, the same refusal.
    assert refusal(DJANGO_SECRET_KEY=key) == message


def test_production_refuses_the_development_key() -> None:
    assert "the development key is public" in refusal(DJANGO_DEBUG="0")
    development = "graphsite-development-only-not-for-production"
    message = refusal(DJANGO_SECRET_KEY=development, DJANGO_DEBUG="0")
    assert "the development key is public" in message


def test_nothing_configured_is_development_and_a_secret_key_is_production() -> None:
    assert settings_with()["DEBUG"] is True
    assert settings_with(DJANGO_SECRET_KEY=STRONG_KEY)["DEBUG"] is False
    assert settings_with(DJANGO_SECRET_KEY=STRONG_KEY, DJANGO_DEBUG="1")["DEBUG"] is True
    # Development may use a short key of its own, as it asks for it.
    assert settings_with(DJANGO_SECRET_KEY="dev", DJANGO_DEBUG="1")["SECRET_KEY"] == "dev"


def test_the_public_development_key_serves_this_machine_only() -> None:
    local = settings_with(DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,[::1]")
    assert local["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]"]

    message = refusal(DJANGO_ALLOWED_HOSTS="localhost,graph.example.com")

    assert "names graph.example.com but DJANGO_SECRET_KEY is not set" in message
    assert "*" in refusal(DJANGO_ALLOWED_HOSTS="*", DJANGO_DEBUG="1")
    public = settings_with(DJANGO_SECRET_KEY=STRONG_KEY, DJANGO_ALLOWED_HOSTS="graph.example.com")
    assert public["DEBUG"] is False


def test_https_turns_on_the_redirect_hsts_and_secure_cookies() -> None:
    plain = settings_with(DJANGO_SECRET_KEY=STRONG_KEY)
    https = settings_with(DJANGO_SECRET_KEY=STRONG_KEY, DJANGO_HTTPS="1")
    names = ["SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]

    assert [plain[name] for name in names] == [False, False, False]
    assert [https[name] for name in names] == [True, True, True]
    assert (plain["SECURE_HSTS_SECONDS"], https["SECURE_HSTS_SECONDS"]) == (0, 31_536_000)
    # Subdomains and preloading bind more than this site: only when asked.
    assert https["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is https["SECURE_HSTS_PRELOAD"] is False


def test_each_https_variable_overrides_the_set() -> None:
    chosen = settings_with(
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_HTTPS="1",
        DJANGO_SECURE_SSL_REDIRECT="0",  # the proxy redirects
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="yes",
        DJANGO_SECURE_HSTS_PRELOAD="on",
        DJANGO_CSRF_COOKIE_SECURE="false",
    )
    assert chosen["SECURE_SSL_REDIRECT"] is False
    assert chosen["SECURE_HSTS_SECONDS"] == 3600
    assert chosen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is chosen["SECURE_HSTS_PRELOAD"] is True
    assert chosen["SESSION_COOKIE_SECURE"] is True
    assert chosen["CSRF_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DJANGO_HTTPS", "maybe", "must be one of 1/0, true/false, yes/no, on/off"),
        ("DJANGO_DEBUG", "2", "must be one of 1/0, true/false, yes/no, on/off"),
        ("DJANGO_SESSION_COOKIE_SECURE", "secure", "must be one of 1/0"),
        ("DJANGO_SECURE_HSTS_SECONDS", "1y", "must be a whole number >= 0"),
        ("DJANGO_SECURE_HSTS_SECONDS", "-1", "must be a whole number >= 0"),
        ("DJANGO_LOGIN_FAILURE_LIMIT", "0", "must be a whole number >= 1"),
        ("DJANGO_LOGIN_COOLOFF", "15m", "must be a whole number >= 1"),
    ],
)
def test_a_bad_value_is_refused_with_its_name(variable: str, value: str, expected: str) -> None:
    message = refusal(**{variable: value})
    assert message.startswith(f"django.core.exceptions.ImproperlyConfigured: {variable}={value!r}")
    assert expected in message


POSTGRESQL = "postgres://u@db.invalid:5432/site"


def database_with(**variables: str) -> dict[str, Any]:
    """graphsite's DATABASES["default"] on PostgreSQL with ``variables``."""
    code = "import json; from graphsite import settings; print(json.dumps(settings.DATABASES))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=site_env(DATABASE_URL=POSTGRESQL, **variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    default: dict[str, Any] = json.loads(done.stdout)["default"]
    return default


def test_postgresql_connections_are_checked_and_every_wait_is_short() -> None:
    default = database_with()
    assert default["CONN_HEALTH_CHECKS"] is True
    assert default["OPTIONS"]["connect_timeout"] == 2
    pool = default["OPTIONS"]["pool"]
    assert (pool["max_size"], pool["timeout"]) == (20, 3.0)
    # Below the pool's second retry (2 s after the first): no wait between retries passes 1 s.
    assert pool["reconnect_timeout"] <= 2


def test_the_pool_and_connect_waits_come_from_the_environment() -> None:
    default = database_with(
        DATABASE_POOL_SIZE="7", DATABASE_POOL_TIMEOUT="1.5", DATABASE_CONNECT_TIMEOUT="4"
    )
    assert default["OPTIONS"]["connect_timeout"] == 4
    assert (default["OPTIONS"]["pool"]["max_size"], default["OPTIONS"]["pool"]["timeout"]) == (
        7,
        1.5,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_POOL_TIMEOUT", "soon", "must be a number of seconds > 0"),
        ("DATABASE_POOL_TIMEOUT", "0", "must be a number of seconds > 0"),
        ("DATABASE_POOL_TIMEOUT", "nan", "must be a number of seconds > 0"),
        ("DATABASE_CONNECT_TIMEOUT", "1", "must be a whole number >= 2"),
        ("DATABASE_POOL_SIZE", "0", "must be a whole number >= 1"),
    ],
)
def test_a_bad_database_wait_is_refused_with_its_name(
    variable: str, value: str, expected: str
) -> None:
    message = refusal(DATABASE_URL=POSTGRESQL, **{variable: value})
    assert message.startswith(f"django.core.exceptions.ImproperlyConfigured: {variable}={value!r}")
    assert expected in message


def documented_production() -> str:
    """The shell block of docs/deployment.md's "graphsite in production"."""
    page = (ROOT / "docs" / "deployment.md").read_text()
    section = page.split("## graphsite in production\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "no sh block in docs/deployment.md's graphsite in production"
    return block[1]


def check_deploy(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash from the checkout, with the suite's interpreter as .venv's."""
    script = script.replace(".venv/bin/python", sys.executable)
    return subprocess.run(
        ["bash", "-euc", script],
        cwd=ROOT,
        env=site_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_in_the_documented_production_configuration() -> None:
    script = documented_production()
    assert script.rstrip().endswith("manage.py check --deploy --fail-level WARNING")

    done = check_deploy(script)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_without_the_configuration_names_what_is_missing() -> None:
    done = check_deploy(".venv/bin/python manage.py check --deploy --fail-level WARNING")

    assert done.returncode != 0
    found = set(re.findall(r"\((\w+\.\w\d{3})\)", done.stderr))
    expected = {"W004", "W008", "W009", "W012", "W016", "W018"}
    assert found == {f"security.{warning}" for warning in expected}


def test_check_deploy_names_the_hsts_lines_left_out() -> None:
    script = "\n".join(line for line in documented_production().splitlines() if "HSTS_" not in line)

    done = check_deploy(script)

    assert done.returncode != 0
    assert set(re.findall(r"\((\w+\.\w\d{3})\)", done.stderr)) == {
        "security.W005",
        "security.W021",
    }


@pytest.mark.e2e
def test_a_deployment_answers_404_without_listing_the_url_patterns(
    make_server: Callable[..., LiveServer],
) -> None:
    # The key alone, as an operator who forgot DJANGO_DEBUG would start it.
    deployed = make_server(extra_env={"DJANGO_SECRET_KEY": STRONG_KEY})
    development = make_server()

    hidden = httpx.get(f"{deployed.url}/no-such-page/")
    listed = httpx.get(f"{development.url}/no-such-page/")

    assert (hidden.status_code, listed.status_code) == (404, 404)
    # Django's debug 404 names the URLconf and lists its patterns, graphapp's included.
    assert "graphsite.urls" in listed.text
    assert "graph/" in listed.text
    assert "graphsite.urls" not in hidden.text
    assert "graph/" not in hidden.text
