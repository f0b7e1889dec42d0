"""Channel layers with faults, for tests that need a broken broker."""

from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer


class LayerDownError(ConnectionError):
    """What the failing layer raises: a broker that cannot be reached."""


class SendFailingChannelLayer(InMemoryChannelLayer):
    """Receives normally, but every group_send fails as an unreachable broker would."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        raise LayerDownError("broker unreachable (test layer)")


class SubscribeFailingChannelLayer(InMemoryChannelLayer):
    """Every group_add fails: no stream can subscribe to the group."""

    async def group_add(self, group: str, channel: str) -> None:
        raise LayerDownError("broker unreachable (test layer)")


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
