"""Request bodies over a limit are refused with 413 before the application reads them.

Django's ASGI handler reads every request body whole (into a temporary file)
before it looks at the URL, so without a bound in front of it an anonymous
POST of any size to any URL costs its size in disk and time. :class:`BodyLimit`
is that bound, as an ASGI application around Django's: a ``Content-Length``
over the limit is answered at once, before the client sends the body; a body
of unknown length (chunked) is cut as it passes the limit. Either way the
answer closes the connection (plain daphne keeps one whose body it has read).

Under a server that streams bodies (uvicorn) that is the whole bound. daphne
reads the body before it calls the application; ``python -m graphapp.daphne``
applies the same limit as the body arrives (see graphapp/daphne.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils import translation
from django.utils.translation import gettext

if TYPE_CHECKING:  # graphapp.types needs the app registry; an asgi.py imports this before
    from graphapp.types import ASGIApp, Message, Receive, Scope, Send

Headers = Iterable[tuple[bytes, bytes]]
STATUS = 413
REASON = b"Content Too Large"  # RFC 9110; "Payload Too Large" before it


@dataclass(frozen=True)
class Refusal:
    """The whole 413 answer: headers (lower-case names) and body."""

    headers: list[tuple[bytes, bytes]]
    body: bytes


def declared_length(headers: Headers) -> int | None:
    """The request's Content-Length, None when it has none or it is not a number
    (the server refuses such a request itself)."""
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    if not lengths or not all(value.strip().isdigit() for value in lengths):
        return None
    return max(int(value) for value in lengths)


def request_language(headers: Headers) -> str:
    """The language LocaleMiddleware would choose from these headers (its cookie,
    Accept-Language); the site's own without LocaleMiddleware."""
    if "django.middleware.locale.LocaleMiddleware" not in settings.MIDDLEWARE:
        return settings.LANGUAGE_CODE
    request = HttpRequest()
    for name, value in headers:
        if name.lower() == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
        elif name.lower() == b"cookie":
            request.COOKIES = parse_cookie(value.decode("latin-1"))
    return translation.get_language_from_request(request)


class BodyLimit:
    """An ASGI application around ``app`` that refuses, with 413 and a closed
    connection, every HTTP request whose body is over ``max_bytes``.

    ``max_bytes`` is by default Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``, read
    at each request (None there: no limit), beyond which Django refuses a body
    anyway; a site that takes file uploads passes its own. A path that starts
    with one of ``json_prefixes`` gets the refusal as JSON (``{"error": ...}``),
    any other as plain text.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int | None = None, json_prefixes: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefixes = tuple(json_prefixes)

    @property
    def limit(self) -> int | None:
        """The largest body let through, in bytes; None: any."""
        if self.max_bytes is not None:
            return self.max_bytes
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return limit

    def refusal(self, path: str, headers: Headers) -> Refusal:
        """The answer to a request for ``path`` with ``headers`` whose body is too large."""
        headers = list(headers)
        with translation.override(request_language(headers)):
            message = gettext("The request body is larger than %(limit)s bytes.") % {
                "limit": f"{self.limit:,}"
            }
        if path.startswith(self.json_prefixes):
            body, kind = json.dumps({"error": message}).encode(), b"application/json"
        else:
            body, kind = (message + "\n").encode(), b"text/plain; charset=utf-8"
        return Refusal(
            [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
            body,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = declared_length(scope["headers"])
        if length is not None and length > limit:
            await self.refuse(scope, send)
            return
        if length is not None:
            # The server delivers no more than Content-Length says.
            await self.app(scope, receive, send)
            return
        await _Bounded(self, scope, receive, send, limit).run()

    async def refuse(self, scope: Scope, send: Send) -> None:
        """Send the 413 for this request."""
        refusal = self.refusal(scope["path"], scope["headers"])
        await send({"type": "http.response.start", "status": STATUS, "headers": refusal.headers})
        await send({"type": "http.response.body", "body": refusal.body})


@dataclass
class _Bounded:
    """One request of unknown length: its body counted as the application reads it.

    Past the limit, the 413 goes out (unless the application already answered)
    and the application is told that the client left, which ends Django's
    handler before it looks at the request; whatever it sends then is dropped.
    """

    bound: BodyLimit
    scope: Scope
    receive: Receive
    send: Send
    most: int
    received: int = 0
    started: bool = False
    cut: bool = False

    async def run(self) -> None:
        await self.bound.app(self.scope, self._receive, self._send)

    async def _receive(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.most:
                self.cut = True
                if not self.started:
                    await self.bound.refuse(self.scope, self.send)
                return {"type": "http.disconnect"}
        return message

    async def _send(self, message: Message) -> None:
        if self.cut:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
