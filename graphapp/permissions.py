"""Default permission checks; replace them with ``GRAPHAPP["..._PERMISSION_CHECK"]``.

A check is a callable ``(user) -> bool``, plain or ``async``; a plain one runs
in a worker thread, so it may query the database.
"""

import inspect
from typing import Literal

from asgiref.sync import sync_to_async
from django.contrib.auth.models import PermissionsMixin
from django.utils.module_loading import import_string

from graphapp.conf import get_config
from graphapp.types import PermissionCheck, User

CheckName = Literal["VIEW_PERMISSION_CHECK", "ADD_PERMISSION_CHECK"]


async def has_perm(user: User, perm: str) -> bool:
    """``user.has_perm(perm)`` without blocking the event loop."""
    if not user.is_authenticated:
        return False
    if isinstance(user, PermissionsMixin):
        return await user.ahas_perm(perm)
    # A custom user model without PermissionsMixin may still define has_perm().
    method = getattr(user, "has_perm", None)
    return callable(method) and bool(await sync_to_async(method)(perm))


async def can_view_graph(user: User) -> bool:
    """Logged in with ``graphapp.view_node``: may read the stream, the page and the API."""
    return await has_perm(user, "graphapp.view_node")


async def can_add_node(user: User) -> bool:
    """Logged in with ``graphapp.add_node``: may create nodes through the API."""
    return await has_perm(user, "graphapp.add_node")


async def check_permission(user: User, name: CheckName) -> bool:
    """Run the configured check ``name`` for ``user``."""
    check: PermissionCheck = import_string(get_config()[name])
    if inspect.iscoroutinefunction(check):
        result = await check(user)
    else:
        result = await sync_to_async(check)(user)
    if inspect.isawaitable(result):  # a plain function that returned a coroutine
        result = await result
    # Only a real True lets anyone in: a truthy object is a bug, not a yes.
    return result is True
