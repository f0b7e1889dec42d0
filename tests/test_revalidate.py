"""A change of access has a hub check its streams again at once (graphapp.revoke ->
graphapp.revalidate), in this process: the receivers, the courier, the layer and a
real hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connections, transaction
from django.test import override_settings

from graphapp import revalidate
from graphapp.hubs import Hub
from graphapp.mailbox import StreamClosed, Subscriber
from graphapp.permissions import can_view_graph
from graphapp.rechecks import Recheck
from graphapp.revoke import courier, session_digest

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


async def in_thread(job: Callable[[], T]) -> T:
    """Run ``job`` as a view or the shell would, off the loop; close its connection."""

    def run() -> T:
        try:
            return job()
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()


def reader(username: str, *groups: Group) -> User:
    user = User.objects.create_user(username, password="unused")
    if groups:
        user.groups.add(*groups)
    else:
        user.user_permissions.add(Permission.objects.get(codename="view_node"))
    return user


def session_of(user: User) -> str:
    """A logged-in session of ``user`` in the store, as login() leaves it."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    assert store.session_key is not None
    return store.session_key


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub(asyncio.get_running_loop())
    try:
        yield hub
    finally:
        hub.close_all(bytes)


async def stream_of(hub: Hub, user: User, session_key: str) -> Subscriber:
    # What setting the users up sent has gone first (to no hub: none listened).
    await in_thread(lambda: courier.wait(5))
    return await hub.subscribe(
        session_digest(session_key), user=str(user.pk), session_key=session_key
    )


async def closes(subscriber: Subscriber, within: float) -> bool:
    """Whether its hub ends ``subscriber`` within ``within`` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                try:
                    await subscriber.wait(0.05)
                except StreamClosed:
                    return True
                subscriber.take()
    return False


PASS = re.compile(r"(\d+) of (\d+) stream\(s\) checked again ended")


def passes(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    return [
        (int(found[1]), int(found[2]))
        for record in caplog.records
        if (found := PASS.search(record.getMessage()))
    ]


async def passed(caplog: pytest.LogCaptureFixture, count: int) -> list[tuple[int, int]]:
    """The hub's passes, once there are ``count`` of them (bounded wait)."""
    async with asyncio.timeout(5):
        while len(passes(caplog)) < count:  # noqa: ASYNC110 - log records set no event
            await asyncio.sleep(0.02)
    return passes(caplog)


@pytest.fixture(autouse=True)
def _logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="graphapp")


async def test_a_password_change_ends_the_streams_of_that_user_alone(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await in_thread(lambda: reader("alice"))
    bob = await in_thread(lambda: reader("bob"))
    first, second = (
        await in_thread(lambda: session_of(alice)),
        await in_thread(lambda: session_of(alice)),
    )
    tabs = [await stream_of(hub, alice, first), await stream_of(hub, alice, first)]
    other_session = await stream_of(hub, alice, second)
    kept = await stream_of(hub, bob, await in_thread(lambda: session_of(bob)))

    def change_password() -> None:
        alice.set_password("another one")
        alice.save()

    await in_thread(change_password)
    for subscriber in [*tabs, other_session]:
        assert await closes(subscriber, 5.0)
    assert await passed(caplog, 1) == [(3, 3)], "only alice's streams were checked"
    assert kept in hub.subscribers
    assert not await closes(kept, 0.2)


async def one_ends_the_other_streams_on(
    hub: Hub,
    caplog: pytest.LogCaptureFixture,
    ending_user: User,
    kept_user: User,
    change: Callable[[], None],
    *,
    checked: int = 1,
) -> None:
    """``change()`` ends the stream of ``ending_user`` within seconds, in one
    pass that checked ``checked`` streams; the one of ``kept_user`` streams on."""
    ending = await stream_of(hub, ending_user, await in_thread(lambda: session_of(ending_user)))
    kept = await stream_of(hub, kept_user, await in_thread(lambda: session_of(kept_user)))
    await in_thread(change)
    assert await closes(ending, 5.0)
    assert await passed(caplog, 1) == [(1, checked)]
    assert kept in hub.subscribers


def readers_group() -> Group:
    readers = Group.objects.create(name="readers")
    readers.permissions.add(Permission.objects.get(codename="view_node"))
    return readers


async def test_a_group_losing_its_permission_ends_its_members_streams_and_no_other(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    readers = await in_thread(readers_group)
    member, direct = await in_thread(lambda: (reader("member", readers), reader("direct")))
    # Everyone's streams are checked: the group's members are not named.
    await one_ends_the_other_streams_on(
        hub, caplog, member, direct, readers.permissions.clear, checked=2
    )


async def test_a_group_deleted_ends_its_members_streams_and_no_other(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    readers = await in_thread(readers_group)
    member, direct = await in_thread(lambda: (reader("member", readers), reader("direct")))
    await one_ends_the_other_streams_on(hub, caplog, member, direct, readers.delete, checked=2)


async def test_a_membership_removed_from_the_groups_side_names_its_users(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    readers = await in_thread(readers_group)
    leaving, staying = await in_thread(
        lambda: (reader("leaving", readers), reader("staying", readers))
    )
    await one_ends_the_other_streams_on(
        hub, caplog, leaving, staying, lambda: readers.user_set.remove(leaving)
    )


async def test_sessions_deleted_by_a_queryset_end_their_streams(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await in_thread(lambda: reader("sessions"))
    keys = [await in_thread(lambda: session_of(user)) for _ in range(3)]
    streams = [await stream_of(hub, user, key) for key in keys]
    await in_thread(lambda: Session.objects.filter(session_key__in=keys[:2]).delete())
    assert await closes(streams[0], 5.0)
    assert await closes(streams[1], 5.0)
    assert await passed(caplog, 1) == [(2, 2)], "the deleted sessions' streams, in one pass"
    assert streams[2] in hub.subscribers


async def test_a_rolled_back_change_sends_nothing(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    kept, marker = await in_thread(lambda: (reader("kept"), reader("marker")))

    def roll_back_then_commit() -> None:
        with transaction.atomic():
            kept.is_active = False
            kept.save()
            transaction.set_rollback(True)
        marker.is_active = False
        marker.save()

    # Had the rolled-back change been sent, the pass would have checked two streams.
    await one_ends_the_other_streams_on(hub, caplog, marker, kept, roll_back_then_commit)


async def test_a_login_saves_the_user_without_a_recheck(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    user, marker = await in_thread(lambda: (reader("login"), reader("marker")))

    def log_in_then_change_marker() -> None:
        user.save(update_fields=["last_login"])  # what update_last_login saves
        marker.user_permissions.clear()

    await one_ends_the_other_streams_on(hub, caplog, marker, user, log_in_then_change_marker)


CHECKED: list[str] = []


def counted_view_check(user: Any) -> bool:
    """The default check, counting the users it is asked about."""
    CHECKED.append(user.get_username())
    return can_view_graph(user)


@override_settings(GRAPHAPP={"VIEW_PERMISSION_CHECK": "tests.test_revalidate.counted_view_check"})
async def test_rechecks_that_arrive_together_make_one_pass_one_check_per_session(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    user = await in_thread(lambda: reader("storm"))
    key = await in_thread(lambda: session_of(user))
    streams = [await stream_of(hub, user, key) for _ in range(3)]
    CHECKED.clear()
    recheck = Recheck()
    recheck.add(users=[user.pk])
    for _ in range(100):  # a storm of edits, delivered in one go
        hub.receive(recheck.message())
    assert await passed(caplog, 1) == [(0, 3)]
    assert CHECKED == ["storm"], "one session, checked once, for a hundred rechecks"
    assert all(stream in hub.subscribers for stream in streams)


async def test_a_pass_checks_sessions_in_batches(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    users = await in_thread(lambda: [reader(f"batch{n}") for n in range(revalidate.BATCH + 5)])
    for user in users:
        await stream_of(hub, user, await in_thread(lambda user=user: session_of(user)))
    await in_thread(lambda: Permission.objects.get(codename="view_node").group_set.clear())
    assert await passed(caplog, 1) == [(0, revalidate.BATCH + 5)]


def test_a_change_of_access_is_saved_when_the_layer_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = reader("unsent")
    with override_settings(GRAPHAPP={"CHANNEL_LAYER": "missing"}):
        user.is_active = False
        user.save()
        assert courier.wait(5)
    user.refresh_from_db()
    assert not user.is_active
    assert "a change of access not sent to the streams" in caplog.text
