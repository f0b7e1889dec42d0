"""graphsite's hooks into django-axes: the client's address behind proxies."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from graphsite.throttle import client_address


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "10.0.0.9", "127.0.0.1"),  # no proxy: what a client writes means nothing
        (1, "", "127.0.0.1"),  # came past the proxy
        (1, "10.0.0.1", "10.0.0.1"),
        (1, "10.0.0.9, 10.0.0.1", "10.0.0.1"),  # the client's own entry, then nginx's
        (2, "10.0.0.9, 10.0.0.1, 192.168.0.2", "10.0.0.1"),  # a balancer, then nginx
        (2, "192.168.0.2", "127.0.0.1"),  # fewer entries than proxies
        (1, " 10.0.0.1 ,", "10.0.0.1"),
    ],
)
def test_client_address_is_the_proxies_word_from_the_right(
    proxies: int, forwarded: str, expected: str
) -> None:
    request = RequestFactory().post(
        "/accounts/login/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded
    )
    with override_settings(GRAPHSITE_PROXY_COUNT=proxies):
        assert client_address(request) == expected
