"""graphapp.tokens: what a stream token carries, and what it refuses."""

from __future__ import annotations

import json

import pytest
from django.core import signing
from django.test import override_settings

from graphapp import tokens

SESSION_KEY = "q8cs2ch1d5wbaqbdkqjagw6upbrorjgs"


def test_a_token_gives_back_its_session_and_user() -> None:
    token = tokens.issue(SESSION_KEY, "42")

    assert tokens.session_of(token) == (SESSION_KEY, "42")


def test_a_token_never_shows_its_session_key() -> None:
    # Whoever reads a token (in a log, say) must not learn a key that logs them in.
    token = tokens.issue(SESSION_KEY, "42")
    payload = signing.loads(token, salt=tokens.SALT)

    assert SESSION_KEY not in token
    assert SESSION_KEY not in json.dumps(payload)
    assert tokens.issue(SESSION_KEY, "42") != token  # a nonce of its own each time


def test_a_value_signed_by_this_site_for_another_use_is_no_token() -> None:
    # Same SECRET_KEY, another salt: what Django signs elsewhere opens no stream.
    payload = signing.loads(tokens.issue(SESSION_KEY, "42"), salt=tokens.SALT)
    forged = signing.dumps(payload, salt="django.contrib.sessions.backends.signed_cookies")

    with pytest.raises(tokens.InvalidToken, match="not valid"):
        tokens.session_of(forged)


def test_a_token_signed_with_another_secret_key_is_refused() -> None:
    with override_settings(SECRET_KEY="another-secret-key-" + "z" * 40):
        token = tokens.issue(SESSION_KEY, "42")

    with pytest.raises(tokens.InvalidToken, match="not valid"):
        tokens.session_of(token)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer   abc.def  ", "abc.def"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_reads_only_a_bearer_header(header: str | None, token: str | None) -> None:
    assert tokens.bearer(header) == token


def test_token_of_prefers_the_header_and_takes_the_query_only_where_allowed() -> None:
    assert tokens.token_of("Bearer from-header", "from-query") == "from-header"
    assert tokens.token_of(None, None) is None
    with pytest.raises(tokens.InvalidToken, match="TOKEN_IN_QUERY"):
        tokens.token_of(None, "from-query")
    with override_settings(GRAPHAPP={"TOKEN_IN_QUERY": True}):
        assert tokens.token_of(None, "from-query") == "from-query"
