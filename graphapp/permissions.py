"""Default permission checks; replace them with ``GRAPHAPP["..._PERMISSION_CHECK"]``.

A check is a callable ``(user) -> bool``, plain or ``async``; a plain one runs
in a worker thread, so it may query the database.
"""

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Literal

from asgiref.sync import sync_to_async
from django.contrib.auth import aget_user, get_user
from django.http import HttpRequest
from django.utils.module_loading import import_string

from graphapp.conf import get_config
from graphapp.types import PermissionCheck, User

CheckName = Literal["VIEW_PERMISSION_CHECK", "ADD_PERMISSION_CHECK"]


def user_has_perm(user: User, perm: str) -> bool:
    """``user.has_perm(perm)``, False for anonymous users and for a custom user
    model without ``has_perm()``; queries the database (call it from a thread)."""
    if not user.is_authenticated:
        return False
    method = getattr(user, "has_perm", None)
    return callable(method) and bool(method(perm))


def can_view_graph(user: User) -> bool:
    """Logged in with ``graphapp.view_node``: may read the stream, the page and the API."""
    return user_has_perm(user, "graphapp.view_node")


def can_add_node(user: User) -> bool:
    """Logged in with ``graphapp.add_node``: may create nodes through the API."""
    return user_has_perm(user, "graphapp.add_node")


def _configured(name: CheckName) -> PermissionCheck:
    check: PermissionCheck = import_string(get_config()[name])
    return check


async def _verdict(result: object) -> bool:
    if inspect.isawaitable(result):  # a plain function that returned a coroutine
        result = await result
    # Only a real True lets anyone in: a truthy object is a bug, not a yes.
    return result is True


async def check_permission(user: User, name: CheckName) -> bool:
    """Run the configured check ``name`` for ``user``."""
    check = _configured(name)
    if inspect.iscoroutinefunction(check):
        return await _verdict(check(user))
    return await _verdict(await sync_to_async(check)(user))


async def identify_and_check(identify: Callable[[], User], name: CheckName) -> tuple[User, bool]:
    """The user ``identify()`` finds (a plain function: it may query the
    database), and whether check ``name`` lets them in.

    With a plain check (the defaults are), finding the user and checking them
    take one trip to a worker thread: ``aget_user()`` and an async check make
    four or more, each a thread switch, and took a third more time per stream
    connect (bench/).
    """
    check = _configured(name)
    if inspect.iscoroutinefunction(check):
        visitor: User = await sync_to_async(identify)()
        return visitor, await _verdict(check(visitor))

    def load() -> tuple[User, object]:
        user = identify()
        return user, check(user)

    user, result = await sync_to_async(load)()
    return user, await _verdict(result)


async def load_and_check(request: HttpRequest, name: CheckName) -> tuple[User, bool]:
    """The user of ``request``'s session, and whether check ``name`` lets them in,
    in one thread trip (:func:`identify_and_check`)."""
    return await identify_and_check(functools.partial(get_user, request), name)


async def check_each(requests: Sequence[HttpRequest], name: CheckName) -> list[bool]:
    """Whether check ``name`` lets in the user of each request's session; with
    a plain check, all in one trip to a worker thread (graphapp.revalidate)."""
    check = _configured(name)
    if inspect.iscoroutinefunction(check):
        return [await _verdict(check(await aget_user(request))) for request in requests]

    def load() -> list[object]:
        return [check(get_user(request)) for request in requests]

    return [await _verdict(result) for result in await sync_to_async(load)()]
