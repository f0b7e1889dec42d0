"""Stream tokens: a short-lived, signed stand-in for a session cookie.

A client that cannot send cookies (a CLI, a mobile app, another service, a
page of another site whose browser withholds third-party cookies) asks for a
token while logged in (``POST /graph/api/token/``) and opens the stream with
it (``Authorization: Bearer <token>``). The token carries the session it was
issued from, so a stream opened with it is that session's stream: the same
permission check, revalidation and revocation. A logout (the session flushed)
or a password change (the session's auth hash no longer matches) revokes the
token and ends its streams, as it does the session's.

The token is ``django.core.signing``'s (salted, timestamped, checked against
``TOKEN_MAX_AGE``). The session key inside is masked with a key stream derived
from SECRET_KEY and a random nonce (HMAC-SHA256 as the pseudo-random function,
the signature over the masked bytes): whoever reads a token in a log learns
no session key, which would log them in everywhere. A token issued before a
SECRET_KEY rotation is refused; it lives minutes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import timedelta
from typing import Final

from django.core import signing
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext

from graphapp.conf import get_config

SALT: Final = "graphapp.tokens"
NONCE_BYTES: Final = 16


class InvalidToken(Exception):
    """A token that was tampered with, has expired, or is not a token at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key_stream(nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range(-(-length // 32)):
        block = nonce + counter.to_bytes(4, "big")
        blocks.append(salted_hmac(SALT + ".mask", block, algorithm="sha256").digest())
    return b"".join(blocks)[:length]


def _xor(data: bytes, mask: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, mask, strict=True))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(session_key: str, user_pk: str) -> str:
    """A token for the session ``session_key`` of the user ``user_pk``."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    key = session_key.encode()
    masked = _xor(key, _key_stream(nonce, len(key)))
    return signing.dumps({"u": user_pk, "n": _b64(nonce), "k": _b64(masked)}, salt=SALT)


def session_of(token: str) -> tuple[str, str]:
    """The session key and the user pk (a string) that ``token`` carries;
    raises InvalidToken when it is expired, tampered with or malformed."""
    try:
        payload = signing.loads(
            token, salt=SALT, max_age=timedelta(seconds=get_config()["TOKEN_MAX_AGE"])
        )
    except signing.SignatureExpired as exc:
        raise InvalidToken(gettext("The token has expired; ask for a new one.")) from exc
    except signing.BadSignature as exc:
        raise InvalidToken(gettext("The token is not valid.")) from exc
    try:
        nonce, masked = _unb64(payload["n"]), _unb64(payload["k"])
        session_key = _xor(masked, _key_stream(nonce, len(masked))).decode("ascii")
        user_pk = payload["u"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        # Signed by us, so never expected: a token of another version.
        raise InvalidToken(gettext("The token is not valid.")) from exc
    if not isinstance(user_pk, str):
        raise InvalidToken(gettext("The token is not valid."))
    return session_key, user_pk


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_of(authorization: str | None, query: str | None) -> str | None:
    """The token a stream request carries: its ``Authorization: Bearer``
    header, else its ``token`` query parameter where TOKEN_IN_QUERY allows
    it; raises InvalidToken for one in the query when it does not."""
    token = bearer(authorization)
    if token is not None or query is None:
        return token
    if not get_config()["TOKEN_IN_QUERY"]:
        raise InvalidToken(
            gettext(
                "Send the token in an Authorization: Bearer header; this site takes "
                "none in the query string (TOKEN_IN_QUERY)."
            )
        )
    return query
