"""graphsite's login throttle (django-axes) against a real daphne: wrong passwords
lock one username from one address out of graphsite's login form and the admin's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.live import EVENT_TIMEOUT, LiveServer, submit_login
from tests.site_setup import PASSWORD

pytestmark = pytest.mark.e2e

LIMIT = 3
COOLOFF = 600
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    limits = {"DJANGO_LOGIN_FAILURE_LIMIT": str(LIMIT), "DJANGO_LOGIN_COOLOFF": str(COOLOFF)}
    return make_server(extra_env=limits)


@pytest.fixture
async def browser(server: LiveServer) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Clients of ``server`` from a loopback address of their choice (127.0.0.x):
    the server sees each address as another machine."""
    opened: list[httpx.AsyncClient] = []

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        client = httpx.AsyncClient(base_url=server.url, transport=transport, timeout=EVENT_TIMEOUT)
        opened.append(client)
        return client

    yield client_from
    await asyncio.gather(*(client.aclose() for client in opened))


async def fail(
    client: httpx.AsyncClient, username: str, times: int, path: str = LOGIN
) -> list[int]:
    """The statuses of ``times`` logins with a wrong password."""
    return [
        (await submit_login(client, username, "not-the-password", path)).status_code
        for _ in range(times)
    ]


# The form again with its error, until the failure that reaches the limit.
LOCKING = [200] * (LIMIT - 1) + [429]


async def test_wrong_passwords_lock_out_the_next_login_even_with_the_right_password(
    browser: Callable[[str], httpx.AsyncClient],
) -> None:
    attacker = browser("127.0.0.1")
    assert await fail(attacker, "viewer", LIMIT) == LOCKING

    refused = await submit_login(attacker, "viewer", PASSWORD)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(COOLOFF)
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "Too many failed logins" in refused.text
    assert f"Try again in {COOLOFF // 60} minutes" in refused.text
    assert "sessionid" not in attacker.cookies
    attacker.headers["Accept-Language"] = "de"  # the page in the browser's language
    refused = await submit_login(attacker, "viewer", PASSWORD)
    assert "Zu viele fehlgeschlagene Anmeldungen" in refused.text
    assert f"Versuchen Sie es in {COOLOFF // 60} Minuten wieder" in refused.text
    # The admin's form is locked for the same username and address.
    assert (await submit_login(attacker, "viewer", PASSWORD, ADMIN_LOGIN)).status_code == 429


async def test_a_lockout_holds_one_username_from_one_address(
    browser: Callable[[str], httpx.AsyncClient],
) -> None:
    attacker = browser("127.0.0.1")
    assert await fail(attacker, "viewer", LIMIT) == LOCKING

    # Another account from the same address, and the same account from another one.
    assert (await submit_login(attacker, "editor", PASSWORD)).status_code == 302
    assert (await submit_login(browser("127.0.0.2"), "viewer", PASSWORD)).status_code == 302
    assert (await submit_login(attacker, "viewer", PASSWORD)).status_code == 429


async def test_a_good_login_before_the_limit_starts_the_count_again(
    browser: Callable[[str], httpx.AsyncClient],
) -> None:
    user = browser("127.0.0.1")
    assert await fail(user, "viewer", LIMIT - 1) == LOCKING[:-1]
    assert (await submit_login(user, "viewer", PASSWORD)).status_code == 302

    assert await fail(browser("127.0.0.1"), "viewer", LIMIT - 1) == LOCKING[:-1]
    assert (await submit_login(browser("127.0.0.1"), "viewer", PASSWORD)).status_code == 302


async def test_wrong_passwords_on_the_admin_login_lock_it_out(
    browser: Callable[[str], httpx.AsyncClient],
) -> None:
    attacker = browser("127.0.0.1")
    assert await fail(attacker, "admin", LIMIT, ADMIN_LOGIN) == LOCKING

    refused = await submit_login(attacker, "admin", PASSWORD, ADMIN_LOGIN)

    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text
    assert (await submit_login(attacker, "admin", PASSWORD)).status_code == 429


async def test_a_lockout_ends_after_its_cool_off(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(extra_env={"DJANGO_LOGIN_FAILURE_LIMIT": "1", "DJANGO_LOGIN_COOLOFF": "1"})
    async with httpx.AsyncClient(base_url=server.url, timeout=EVENT_TIMEOUT) as client:
        assert await fail(client, "viewer", 1) == [429]
        assert (await submit_login(client, "viewer", PASSWORD)).status_code == 429
        # Every try during a lockout starts its cool-off again: wait it out untried.
        await asyncio.sleep(1.5)
        assert (await submit_login(client, "viewer", PASSWORD)).status_code == 302
