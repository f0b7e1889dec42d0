"""The stream served in front of Django: an ASGI application for ``/graph/events/``.

Through Django, every connect crosses the project's whole middleware chain
(each ``MiddlewareMixin`` hook a trip to a thread) before the view's own
check: a restart's reconnecting browsers then queue behind it. :data:`events`
answers the stream's URL itself, ahead of Django (README, "The stream's two
paths"): it finds the visitor with the configured ``AUTHENTICATOR`` and checks
``VIEW_PERMISSION_CHECK`` in one trip to the check worker (graphapp.access),
then answers as the view does (graphapp.admission): the same stream, limits,
revocation and shutdown. :class:`EventsRouter` puts it in front of Django's
application (or route :data:`events` with Channels' ``URLRouter``).

Import this module after ``get_asgi_application()``: it needs the app registry.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Final

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.http.cookie import parse_cookie
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string

from graphapp import access, cors, tokens
from graphapp.access import checks, on_check_thread
from graphapp.admission import EVENT_STREAM, STREAM_HEADERS, admit, stream_body, unchecked
from graphapp.bodylimit import request_language
from graphapp.conf import get_config
from graphapp.jsonapi import unauthorized
from graphapp.limits import Slot
from graphapp.permissions import identify_and_check
from graphapp.types import ASGIApp, Receive, Scope, Send, User

#: What every stream's response starts with.
STREAM_START: Final = [
    (b"content-type", EVENT_STREAM.encode()),
    *((name.lower().encode(), value.encode()) for name, value in STREAM_HEADERS.items()),
    (b"vary", b"Cookie"),
]


def session_user(scope: Scope) -> User:
    """The default ``AUTHENTICATOR``: the user of the session cookie's session
    (``scope["session"]``), found as Django's AuthenticationMiddleware finds them."""
    request = HttpRequest()
    request.session = scope["session"]
    return get_user(request)


def _session(session_key: str | None) -> SessionBase:
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    return store(session_key)


def _cookies(scope: Scope) -> dict[str, str]:
    # HTTP/2 clients may send the cookies in several headers.
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"]
    return parse_cookie("; ".join(values)) if values else {}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


async def authenticate(scope: Scope, session: SessionBase) -> tuple[User, bool, SessionBase]:
    """The visitor ``AUTHENTICATOR`` finds in ``scope`` (given ``session`` as
    ``scope["session"]``), whether ``VIEW_PERMISSION_CHECK`` admits them, and
    the session that vouches for them: one trip to the check worker.

    An authenticator may put another session in ``scope["session"]`` (the one
    a token names): the stream's revocation and revalidation then follow it.
    """
    authenticator = import_string(get_config()["AUTHENTICATOR"])
    identified = {**scope, "session": session}
    async with on_check_thread():
        user, allowed = await identify_and_check(
            functools.partial(authenticator, identified), "VIEW_PERMISSION_CHECK"
        )
    vouching = identified["session"]
    return user, allowed, vouching if isinstance(vouching, SessionBase) else session


async def _still_allowed(scope: Scope, session_key: str | None) -> bool:
    return (await authenticate(scope, _session(session_key)))[1]


async def _cookie_headers(scope: Scope, session: SessionBase) -> list[tuple[bytes, bytes]]:
    """Save a session the check changed (Django rotates its key when only a
    SECRET_KEY_FALLBACKS key verifies it, flushes it when none does) and the
    cookie that says so, as Django's SessionMiddleware would."""
    request = HttpRequest()
    request.COOKIES = _cookies(scope)
    request.session = session
    carrier = HttpResponse()
    middleware = SessionMiddleware(lambda request: carrier)
    await checks.run(lambda: middleware.process_response(request, carrier))
    return [
        (b"set-cookie", morsel.output(header="").strip().encode("latin-1"))
        for morsel in carrier.cookies.values()
    ]


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]


async def _answer(
    response: HttpResponseBase,
    send: Send,
    cookies: list[tuple[bytes, bytes]],
    origin: str | None = None,
) -> None:
    patch_vary_headers(response, ("Cookie",))
    cors.add_headers(response, origin)
    content = response.content if isinstance(response, HttpResponse) else b""
    start = {"type": "http.response.start", "status": response.status_code}
    await send({**start, "headers": _headers(response) + cookies})
    await send({"type": "http.response.body", "body": content})


async def _stream(
    slot: Slot,
    user: User,
    scope: Scope,
    session_key: str | None,
    still_allowed: Callable[[], Awaitable[bool]],
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send the stream until it ends or the client leaves, whichever comes first."""
    query = QueryDict(scope.get("query_string", b"").decode("latin-1"))
    body = stream_body(
        slot,
        user,
        session_key,
        still_allowed,
        _header(scope, b"last-event-id") or query.get("last_event_id"),
    )

    async def pump() -> None:
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": STREAM_START + headers})
        async for frame in body:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(left())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        slot.release()  # the body's own ``finally`` cannot run if it never started
    for task in done:
        task.result()


class EventsApplication:
    """The ASGI application of the stream: what graphapp.views.events answers,
    without Django's middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"graphapp's stream serves HTTP only, not {scope['type']!r}")
        origin = _header(scope, b"origin")
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await _answer(cors.preflight(origin, ("GET",)), send, [], origin)
            return
        if scope["method"] != "GET":
            await _answer(HttpResponseNotAllowed(["GET"]), send, [], origin)
            return
        query = QueryDict(scope.get("query_string", b"").decode("latin-1"))
        try:
            token = tokens.token_of(_header(scope, b"authorization"), query.get("token"))
            if token is not None:
                await self._by_token(scope, receive, send, token, origin)
                return
        except tokens.InvalidToken as exc:
            await _answer(unauthorized(exc.message), send, [], origin)
            return
        except DatabaseError as exc:
            await _answer(unchecked(exc), send, [], origin)
            return
        cookie = _session(_cookies(scope).get(settings.SESSION_COOKIE_NAME))
        try:
            user, allowed, session = await authenticate(scope, cookie)
            changed = session is cookie and session.modified
            cookies = await _cookie_headers(scope, session) if changed else []
        except DatabaseError as exc:
            await _answer(unchecked(exc), send, [], origin)
            return
        with translation.override(request_language(scope["headers"])):
            admitted = admit(user, allowed)
        if isinstance(admitted, Slot):
            key = session.session_key
            still = functools.partial(_still_allowed, scope, key)
            headers = cookies + _cors_headers(origin)
            await _stream(admitted, user, scope, key, still, receive, send, headers)
        else:
            await _answer(admitted, send, cookies, origin)

    @staticmethod
    async def _by_token(
        scope: Scope, receive: Receive, send: Send, token: str, origin: str | None
    ) -> None:
        """A stream opened with a token: its session's stream (graphapp.tokens)."""
        admission = await access.check_token(token)
        with translation.override(request_language(scope["headers"])):
            admitted = admit(admission.user, admission.allowed)
        if not isinstance(admitted, Slot):
            await _answer(admitted, send, [], origin)
            return
        still = admission.still_allowed()
        key = admission.session_key
        await _stream(
            admitted, admission.user, scope, key, still, receive, send, _cors_headers(origin)
        )


def _cors_headers(origin: str | None) -> list[tuple[bytes, bytes]]:
    """The stream's CORS headers (STREAM_START says ``Vary: Cookie``; this adds Origin)."""
    if not cors.varies():
        return []
    found = [
        (name.lower().encode(), value.encode()) for name, value in cors.headers(origin).items()
    ]
    return [(b"vary", b"Origin"), *found]


#: The stream's application, for a project's own router (Channels' URLRouter).
events = EventsApplication()


class EventsRouter:
    """``app`` (Django's ASGI application) with graphapp's stream answered in front of it.

    The stream's path is ``path``, by default wherever the project's URLconf
    puts ``graphapp:events`` (read at the first request); every other request,
    and every other protocol, goes to ``app``.
    """

    def __init__(self, app: ASGIApp, path: str | None = None) -> None:
        self.app = app
        self._path = path

    @functools.cached_property
    def path(self) -> str:
        """The stream's path, without the server's ``root_path``."""
        if self._path:
            return self._path
        try:
            found = reverse("graphapp:events")
        except NoReverseMatch:
            raise ImproperlyConfigured(
                "EventsRouter: the URLconf has no 'graphapp:events' (include "
                "graphapp.urls), or give EventsRouter(app, path=...)"
            ) from None
        # reverse() adds the script prefix of the request in progress, if any.
        return "/" + found[len(get_script_prefix()) :]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _path_info(scope) == self.path:
            await events(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _path_info(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
