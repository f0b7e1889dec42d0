"""Channel layers with faults, for tests that need a broken broker."""

import logging
import os
from typing import Any

from channels.layers import BaseChannelLayer
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger("graphapp.tests.layers")


class LayerDownError(ConnectionError):
    """What the failing layer raises: a broker that cannot be reached."""


def wrapped_view_check(user: Any) -> Any:
    """A plain permission check that returns a coroutine."""
    from asgiref.sync import sync_to_async

    from graphapp.permissions import can_view_graph

    return sync_to_async(can_view_graph)(user)


async def anyone(user: Any) -> bool:
    """A public graph: every visitor may read it, logged in or not."""
    return True


class UnreachableChannelLayer(BaseChannelLayer):
    """A shared layer whose broker cannot be reached: every call fails."""

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise LayerDownError("broker unreachable (test layer)")

    async def group_add(self, group: str, channel: str) -> None:
        raise LayerDownError("broker unreachable (test layer)")

    async def group_discard(self, group: str, channel: str) -> None:
        raise LayerDownError("broker unreachable (test layer)")

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        raise LayerDownError("broker unreachable (test layer)")

    async def receive(self, channel: str) -> dict[str, Any]:
        raise LayerDownError("broker unreachable (test layer)")


class FaultyRedisChannelLayer(RedisChannelLayer):
    """channels-redis' layer with two faults, set through the environment.

    * While the file named by ``TEST_DROP_FLAG`` exists, every group message is
      lost, as a broker dropping messages (or a publisher that crashed before
      sending) would; each loss is logged, for the test to see the fault happened.
    * ``TEST_REDIS_CAPACITY``: the channels' capacity (default channels-redis'
      100), so that a member nobody reads is over capacity after a few messages.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if os.environ.get("TEST_REDIS_CAPACITY"):
            kwargs["capacity"] = int(os.environ["TEST_REDIS_CAPACITY"])
        super().__init__(*args, **kwargs)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        flag = os.environ.get("TEST_DROP_FLAG", "")
        if flag and os.path.exists(flag):  # noqa: ASYNC240 - one stat(), in a test
            logger.warning("test layer: dropped a message to group %s", group)
            return
        await super().group_send(group, message)
