"""How a publication reaches the hubs: in this process, or through a shared layer.

* Channels' in-memory layer lives in one process: the publisher hands each
  message straight to the hubs of its own process (:class:`LocalTransport`),
  with no layer in between. Other processes (a shell, a command, a second
  server) reach no stream by message; the servers' hubs see their commits
  through the database (graphapp.hubs).
* A shared layer (channels_redis) carries each message to every process
  (:class:`LayerTransport`, ``group_send`` on the publisher's own event loop,
  kept for the life of its thread so that the layer keeps its connection pool),
  and each process's hub reads the group through one
  :class:`GroupSubscription`.

Nothing here computes anything: a message arrives encoded (graphapp.wire).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from graphapp.conf import get_config
from graphapp.timers import Backoff

logger = logging.getLogger(__name__)

#: How often, at most, a hub joins its group again: a layer forgets a member
#: after its ``group_expiry``, and a broker restarted empty has forgotten them all.
REJOIN_AT_MOST: Final = 30.0
#: Seconds between attempts to subscribe again after the layer failed: doubling
#: from the first to the last.
RESUBSCRIBE_FIRST: Final = 0.5
RESUBSCRIBE_LAST: Final = 10.0

Receiver = Callable[[dict[str, Any]], None]


def channel_layer() -> BaseChannelLayer | None:
    """The configured channel layer, or None when CHANNEL_LAYERS lacks the alias."""
    alias = get_config()["CHANNEL_LAYER"]
    try:
        return get_channel_layer(alias)
    except Exception as exc:  # noqa: BLE001 - any backend's constructor may fail
        logger.error(
            "graphapp: channel layer %r cannot be built: %s: %s", alias, type(exc).__name__, exc
        )
        return None


def uses_in_memory_layer() -> bool:
    """True when graphapp's layer is Channels' in-memory layer (or a subclass):
    it reaches this process only."""
    return isinstance(channel_layer(), InMemoryChannelLayer)


# The hubs of this process that take messages directly, one per event loop.
_local: dict[asyncio.AbstractEventLoop, Receiver] = {}
_local_lock = threading.Lock()


def listen_here(loop: asyncio.AbstractEventLoop, receiver: Receiver) -> None:
    """Have ``receiver`` called on ``loop`` with every message published in this process."""
    with _local_lock:
        _local[loop] = receiver


def stop_listening(loop: asyncio.AbstractEventLoop) -> None:
    with _local_lock:
        _local.pop(loop, None)


def deliver_here(message: dict[str, Any]) -> int:
    """Hand ``message`` to every hub of this process; how many took it."""
    with _local_lock:
        receivers = list(_local.items())
    delivered = 0
    for loop, receiver in receivers:
        try:
            loop.call_soon_threadsafe(receiver, message)
        except RuntimeError:  # its loop closed meanwhile
            stop_listening(loop)
        else:
            delivered += 1
    return delivered


class Transport(Protocol):
    """What the publisher sends through (one per publisher thread)."""

    failing: bool  # since a send failed, until one succeeds

    @property
    def audience(self) -> bool:
        """Whether a message sent now could reach any stream."""

    def send(self, message: dict[str, Any]) -> bool:
        """Send ``message``; whether it reached the hubs or the layer."""

    def close(self) -> None: ...


class LocalTransport:
    """The in-memory layer: the hubs of this process, directly."""

    failing = False  # handing a message to a loop does not fail

    @property
    def audience(self) -> bool:
        with _local_lock:
            return bool(_local)

    def send(self, message: dict[str, Any]) -> bool:
        deliver_here(message)
        return True

    def close(self) -> None:
        pass


class LayerTransport:
    """A shared layer: ``group_send`` on an event loop of the calling thread's own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self.failing = False
        self._layer: object = None  # the layer the failing flag is about

    @property
    def audience(self) -> bool:
        return True  # other processes may have streams

    def send(self, message: dict[str, Any]) -> bool:
        layer = channel_layer()
        config = get_config()
        if layer is not self._layer:  # another layer (settings changed): a new story
            self._layer, self.failing = layer, False
        try:
            if layer is None:
                raise LookupError(f"no channel layer {config['CHANNEL_LAYER']!r}")
            self._loop.run_until_complete(
                asyncio.wait_for(layer.group_send(config["GROUP"], message), config["SEND_TIMEOUT"])
            )
        except Exception as exc:  # noqa: BLE001 - backends raise their own errors
            if not self.failing:  # once per outage, not once per save
                logger.error(
                    "graphapp: publishing to the channel layer failed: %s: %s",
                    type(exc).__name__,
                    exc,
                )
            self.failing = True
            return False
        if self.failing:
            logger.info("graphapp: channel layer reachable again; publishing resumed")
        self.failing = False
        return True

    def close(self) -> None:
        self._loop.close()


class Transports:
    """A publisher thread's transports: the one the configured layer calls for,
    asked at each publication (a test or a reload may change the layer), with
    the layer transport's loop kept for the life of the thread."""

    def __init__(self) -> None:
        self._local = LocalTransport()
        self._layer: LayerTransport | None = None

    def current(self) -> Transport:
        if uses_in_memory_layer():
            return self._local
        if self._layer is None:
            self._layer = LayerTransport()
        return self._layer

    def close(self) -> None:
        if self._layer is not None:
            self._layer.close()


def send_once(message: dict[str, Any]) -> None:
    """Send one message from any thread, outside the publisher (a logout's
    revocation: rare, so one blocking send is fine). Raises what the layer raises."""
    if uses_in_memory_layer():
        deliver_here(message)
        return
    layer = channel_layer()
    if layer is None:
        raise LookupError(f"no channel layer {get_config()['CHANNEL_LAYER']!r}")
    # Under ASGI async_to_sync runs it on the server's loop, whose pool it reuses.
    async_to_sync(layer.group_send)(get_config()["GROUP"], message)


class GroupSubscription:
    """One hub's membership of the group on a shared layer, kept by itself.

    :meth:`run` joins, feeds every message to ``receive``, joins again before
    the layer's ``group_expiry`` would drop it (and at least every
    ``REJOIN_AT_MOST`` seconds, in case the broker restarted empty), and after
    any failure of the layer subscribes again with back-off. ``joined(ok)``
    reports each change. It leaves the group when cancelled.
    """

    def __init__(self, receive: Receiver, joined: Callable[[bool], None]) -> None:
        self._receive = receive
        self._joined = joined
        self._failing = False
        self._retry = Backoff(RESUBSCRIBE_FIRST, RESUBSCRIBE_LAST)

    async def run(self) -> None:
        self._failing = False
        while True:
            try:
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - backends raise their own errors
                # Logged once per outage; the attempts in between at DEBUG.
                logger.log(
                    logging.DEBUG if self._failing else logging.ERROR,
                    "graphapp: subscription to group %r failed (trying again, every %.1f s "
                    "at most; streams meanwhile follow the database): %s: %s",
                    get_config()["GROUP"],
                    RESUBSCRIBE_LAST,
                    type(exc).__name__,
                    exc,
                )
                self._failing = True
            self._joined(False)
            await asyncio.sleep(self._retry.failed(0.0))

    async def _serve(self) -> None:
        layer = channel_layer()
        config = get_config()
        if layer is None:
            raise LookupError(f"no channel layer {config['CHANNEL_LAYER']!r}")
        group, channel = config["GROUP"], ""
        try:
            async with asyncio.timeout(config["SEND_TIMEOUT"]):
                channel = await layer.new_channel()
                await layer.group_add(group, channel)
            if self._failing:
                logger.info("graphapp: subscribed to group %r again", group)
                self._failing = False
            self._retry.succeeded()  # the next outage starts from the first delay
            self._joined(True)
            rejoin = asyncio.create_task(self._rejoin(layer, group, channel))
            try:
                # One task reads the layer and is never cancelled while reading
                # but to leave: RedisPubSubChannelLayer drops what arrives while
                # a receive() is being cancelled.
                while True:
                    self._receive(await layer.receive(channel))
            finally:
                rejoin.cancel()
        finally:
            if channel:
                await _leave(layer, group, channel)

    @staticmethod
    async def _rejoin(layer: BaseChannelLayer, group: str, channel: str) -> None:
        expiry = getattr(layer, "group_expiry", None)
        every = REJOIN_AT_MOST
        if isinstance(expiry, int | float) and expiry > 0:
            every = min(every, expiry / 4)
        while True:
            await asyncio.sleep(every)
            try:
                async with asyncio.timeout(get_config()["SEND_TIMEOUT"]):
                    await layer.group_add(group, channel)
            except Exception as exc:  # noqa: BLE001 - backends raise their own errors
                # The reader sees the same outage and subscribes again.
                logger.warning(
                    "graphapp: could not renew membership of group %r: %s: %s",
                    group,
                    type(exc).__name__,
                    exc,
                )


async def _leave(layer: BaseChannelLayer, group: str, channel: str) -> None:
    try:
        async with asyncio.timeout(get_config()["SEND_TIMEOUT"]):
            await layer.group_discard(group, channel)
    except Exception as exc:  # noqa: BLE001 - backends raise their own errors
        logger.warning("graphapp: could not leave group %r: %s: %s", group, type(exc).__name__, exc)
