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
from collections.abc import AsyncIterator, Sequence
from importlib import import_module

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest

from graphapp.permissions import CheckName, check_each, load_and_check
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


async def check_stream(
    request: HttpRequest, name: CheckName = "VIEW_PERMISSION_CHECK"
) -> tuple[User, bool]:
    """The user of ``request``'s session and whether check ``name`` admits them,
    read through a detached copy of the session on the check worker.

    When the check changed the session (Django rotates its key when only a
    SECRET_KEY_FALLBACKS key verifies it, and flushes it when none does), the
    request takes the changed one, so that the response carries it as any
    other page's would.
    """
    checked = detached(request.session)
    async with on_check_thread():
        user, allowed = await load_and_check(checked, name)
    if checked.session.modified:
        request.session = checked.session
    return user, allowed


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
