"""Who may open and keep a stream: the checks, on a thread of their own.

A stream's permission checks run on one worker thread per process
(:data:`checks`), not on the request's own thread (Django's
ThreadSensitiveContext), which lives as long as the stream: what a check leaves
there cost every open stream about 60 KB (docs/benchmarks.md). The worker keeps
its database connection from check to check and closes it when idle
(graphapp.worker).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import import_module

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext

from graphapp import tokens
from graphapp.permissions import CheckName, check_each, identify_and_check, load_and_check
from graphapp.types import User
from graphapp.worker import DatabaseWorker

#: Where this process runs the streams' permission checks.
checks = DatabaseWorker("graphapp-check")


@contextlib.asynccontextmanager
async def on_check_thread() -> AsyncIterator[None]:
    """Run the block's thread-sensitive calls (the ORM's) on the check worker."""
    async with ThreadSensitiveContext(executor=checks):
        yield


def detached(session: SessionBase) -> HttpRequest:
    """A request holding a copy of ``session`` (the same engine, the same
    arguments), so that reading it loads the copy alone.

    A stream's own request lives as long as the stream: checked through it, the
    session's data would stay loaded in it for hours (half a kilobyte of each
    open stream's memory, bench/).
    """
    checked = HttpRequest()
    checked.session = copy.copy(session)
    return checked


@dataclass(frozen=True)
class Admission:
    """Who opens a stream, whether the check admits them, and how the stream
    is checked again: by the session ``session_key`` when one holds the user,
    else by loading the user ``user_pk`` again (through ``backend``)."""

    user: User
    allowed: bool
    session_key: str | None = None
    user_pk: str | None = None
    backend: str | None = None

    def still_allowed(self) -> Callable[[], Awaitable[bool]]:
        """What the stream asks every REVALIDATE_INTERVAL (it holds no user)."""
        if self.user_pk is not None:
            return functools.partial(user_still_allowed, self.user_pk, self.backend)
        return functools.partial(still_allowed, self.session_key)


def from_other_middleware(request: HttpRequest) -> bool:
    """Whether ``request.user`` was set by a middleware other than Django's
    AuthenticationMiddleware (RemoteUserMiddleware, a token or SSO middleware).

    Django's own is a lazy object that reads the session: graphapp reads that
    session itself, through a detached copy.
    """
    user = request.__dict__.get("user")
    if user is None:
        return False
    if isinstance(user, SimpleLazyObject):
        setup = vars(user).get("_setupfunc")
        return getattr(setup, "__module__", None) != "django.contrib.auth.middleware"
    return True


async def check_stream(
    request: HttpRequest, name: CheckName = "VIEW_PERMISSION_CHECK"
) -> Admission:
    """Who may open the stream ``request`` asks for: the user another
    middleware set on it (:func:`check_request_user`), else the user of its
    session, read through a detached copy on the check worker.

    When the check changed the session (Django rotates its key when only a
    SECRET_KEY_FALLBACKS key verifies it, and flushes it when none does), the
    request takes the changed one, so that the response carries it as any
    other page's would.
    """
    if from_other_middleware(request):
        return await check_request_user(request, name)
    checked = detached(request.session)
    admission = await _check_session_of(checked, name)
    if checked.session.modified:
        request.session = checked.session
    return admission


async def check_session(
    session: SessionBase, name: CheckName = "VIEW_PERMISSION_CHECK"
) -> Admission:
    """The user of ``session`` (read through a detached copy) and whether
    check ``name`` admits them."""
    return await _check_session_of(detached(session), name)


async def check_session_key(
    session_key: str | None, name: CheckName = "VIEW_PERMISSION_CHECK"
) -> Admission:
    """:func:`check_session` for the session ``session_key``, read from the store."""
    fresh = HttpRequest()
    fresh.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return await _check_session_of(fresh, name)


async def _check_session_of(checked: HttpRequest, name: CheckName) -> Admission:
    async with on_check_thread():
        user, allowed = await load_and_check(checked, name)
    return Admission(user, allowed, session_key=checked.session.session_key)


async def check_token(token: str, name: CheckName = "VIEW_PERMISSION_CHECK") -> Admission:
    """The session a stream token carries, checked as that session's cookie
    would be; raises InvalidToken when the token is expired, tampered with,
    or its session no longer holds its user (a logout, a password change)."""
    session_key, user_pk = tokens.session_of(token)
    admission = await check_session_key(session_key, name)
    if not admission.user.is_authenticated or str(admission.user.pk) != user_pk:
        raise tokens.InvalidToken(gettext("The token was revoked: its session has ended."))
    return admission


async def check_request_user(
    request: HttpRequest, name: CheckName = "VIEW_PERMISSION_CHECK"
) -> Admission:
    """``request.user`` as the project's middleware set it, and whether check
    ``name`` admits them; checked again later by the request's session when
    that holds the same user (a ``login()`` was made), else by loading the user
    again (its backend's ``get_user()``, ``is_active``, the check)."""
    session: SessionBase | None = getattr(request, "session", None)

    def load() -> User:
        user: User = request.user
        _ = user.is_authenticated  # a lazy object resolves here, not on the loop
        return user

    async with on_check_thread():
        user, allowed = await identify_and_check(load, name)
        if (
            session is not None
            and user.is_authenticated
            and await sync_to_async(_holds)(session, user)
        ):
            return Admission(user, allowed, session_key=session.session_key)
    if not user.is_authenticated:
        return Admission(user, allowed)
    return Admission(user, allowed, user_pk=str(user.pk), backend=getattr(user, "backend", None))


def _holds(session: SessionBase, user: User) -> bool:
    """Whether ``session`` is logged in as ``user`` (read through a copy)."""
    held = detached(session).session.get(SESSION_KEY)
    return held is not None and str(held) == str(user.pk)


async def user_still_allowed(user_pk: str, backend: str | None) -> bool:
    """Load the user ``user_pk`` again (through ``backend`` when it is still
    configured) and check again; False when it is gone or inactive."""

    def load() -> User:
        model = get_user_model()
        pk = model._meta.pk.to_python(user_pk)
        user: User | None
        if backend is None:
            user = model._default_manager.filter(pk=pk).first()
        elif backend in settings.AUTHENTICATION_BACKENDS:
            user = load_backend(backend).get_user(pk)
        else:
            user = None
        if user is None or not getattr(user, "is_active", True):
            return AnonymousUser()
        return user

    async with on_check_thread():
        return (await identify_and_check(load, "VIEW_PERMISSION_CHECK"))[1]


async def still_allowed(session_key: str | None) -> bool:
    """Read the session and the user again, from the store, and check again."""
    return (await still_allowed_each([session_key]))[0]


async def still_allowed_each(session_keys: Sequence[str | None]) -> list[bool]:
    """:func:`still_allowed` for each key, in one trip to the check worker
    (with a plain check): a recheck of many streams (graphapp.revalidate)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    requests = []
    for key in session_keys:
        fresh = HttpRequest()
        fresh.session = store(key)
        requests.append(fresh)
    async with on_check_thread():
        return await check_each(requests, "VIEW_PERMISSION_CHECK")
