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
from collections.abc import AsyncIterator
from importlib import import_module

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest

from graphapp.permissions import CheckName, load_and_check
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
    fresh = HttpRequest()
    fresh.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    async with on_check_thread():
        return (await load_and_check(fresh, "VIEW_PERMISSION_CHECK"))[1]
