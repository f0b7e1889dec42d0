"""Scenario 12: what a change of access costs the streams' process.

Run as ``python -m bench.recheckcost SESSIONS`` with the benchmark site's
environment on a migrated database; prints JSON. Opens SESSIONS streams, each
of its own user and session, in one hub, then times a recheck of everyone (a
group's permissions changed: every session checked again on the check worker,
in batches) from the message to the end of the pass, and one of a single user
among them. Then times ``clearsessions`` over SESSIONS expired rows with
graphapp's receiver connected (Django then loads the rows and sends
``post_delete`` per row) and without it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import sys
import time
from typing import Any

import django


class PassTimer(logging.Handler):
    """Sets ``done`` when the hub logs the end of a recheck pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.done = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "checked again ended" in record.getMessage():
            self.loop.call_soon_threadsafe(self.done.set)


def make_sessions(count: int) -> list[tuple[str, str]]:
    """(user pk, session key) of ``count`` users who may read the stream."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Permission, User
    from django.contrib.sessions.backends.db import SessionStore

    view = Permission.objects.get(codename="view_node")
    password = make_password("unused")
    users = User.objects.bulk_create(
        [User(username=f"reader{n}", password=password) for n in range(count)]
    )
    through = User.user_permissions.through
    through.objects.bulk_create([through(user_id=u.pk, permission_id=view.pk) for u in users])
    opened = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        assert store.session_key is not None
        opened.append((str(user.pk), store.session_key))
    return opened


async def time_passes(sessions: list[tuple[str, str]]) -> dict[str, float]:
    from graphapp.hubs import Hub
    from graphapp.rechecks import Recheck
    from graphapp.revoke import session_digest

    loop = asyncio.get_running_loop()
    timer = PassTimer(loop)
    logger = logging.getLogger("graphapp.revalidate")
    logger.addHandler(timer)
    logger.setLevel(logging.INFO)
    hub = Hub(loop)
    for user, key in sessions:
        await hub.subscribe(session_digest(key), user=user, session_key=key)
    seconds: dict[str, float] = {}
    one_user = {"users": [sessions[0][0]]}
    for name, names in (("everyone_s", {"everyone": True}), ("one_user_s", one_user)):
        recheck = Recheck()
        recheck.add(**names)
        timer.done.clear()
        started = time.perf_counter()
        hub.receive(recheck.message())
        await timer.done.wait()
        seconds[name] = time.perf_counter() - started
    hub.close_all(bytes)
    return seconds


def time_clearsessions(count: int) -> dict[str, float]:
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db.models.signals import post_delete
    from django.utils import timezone

    past = timezone.now() - datetime.timedelta(days=1)
    seconds = {}
    for name in ("clearsessions_s", "clearsessions_without_receiver_s"):
        if name.endswith("receiver_s"):
            post_delete.disconnect(sender=Session, dispatch_uid="graphapp.revoke")
        Session.objects.all().delete()
        Session.objects.bulk_create(
            [
                Session(session_key=f"x{n:039d}", session_data="", expire_date=past)
                for n in range(count)
            ],
            batch_size=5000,
        )
        started = time.perf_counter()
        SessionStore.clear_expired()
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> None:
    django.setup()
    from graphapp.revoke import courier

    count = int(sys.argv[1])
    sessions = make_sessions(count)
    row: dict[str, Any] = {"sessions": count, **asyncio.run(time_passes(sessions))}
    row |= time_clearsessions(count)
    courier.wait(5)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
