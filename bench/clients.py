"""The benchmark's SSE clients: many real HTTP/1.1 connections in one asyncio process.

Run by the harness as ``python -m bench.clients``; it reads one JSON command a
line on standard input and answers each with one JSON line on standard output:

* ``open``: open ``n`` more streams to ``host:port`` ``path`` (``cookies`` used in
  turn), at most ``concurrency`` at a time; a stream counts as open once it
  answered 200 and sent its first bytes. Answers how many opened, failed, and how
  long it took.
* ``mark``: forget what each stream received so far.
* ``wait``: wait until every open stream received a data event since the mark (or
  ``timeout``); answers each stream's receipt time of its first one (``time.time()``).
* ``summary``: wait until no event came for ``settle`` seconds; answers the
  number of data events per stream since the mark and the distinct last ones.
* ``close``: close every stream and exit.

Every answer carries ``cpu``: the CPU seconds this process used so far, so the
harness can say how much of the machine the clients took.

Each connection is a bare ``asyncio.Protocol`` (no HTTP library): it decodes
the chunked body and splits SSE messages itself, and notes the time when the
bytes of a data event arrive.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import Any


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Stream(asyncio.Protocol):
    """One SSE connection."""

    def __init__(self, request: bytes, opened: asyncio.Future[None]) -> None:
        self.request = request
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.raw = bytearray()
        self.body = bytearray()
        self.in_body = False
        self.chunked = False
        self.chunk_left = 0
        self.events = 0
        self.first_at: float | None = None
        self.last_data: bytes | None = None
        self.last_event_at = 0.0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before opening: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
            self.head.clear()
            self.in_body = True
            status = head.split(b"\r\n", 1)[0].split(b" ")
            if len(status) < 2 or status[1] != b"200":
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                assert self.transport is not None
                self.transport.close()
                return
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            data = rest
        if self.chunked:
            self.raw += data
            self._dechunk()
        else:
            self.body += data
        if self.body and not self.opened.done():
            self.opened.set_result(None)
        self._split(now)

    def _dechunk(self) -> None:
        raw = self.raw
        while raw:
            if self.chunk_left == 0:
                end = raw.find(b"\r\n")
                if end < 0:
                    return
                if end == 0:  # the CRLF that closes a chunk's data
                    del raw[:2]
                    continue
                size = int(bytes(raw[:end]).split(b";", 1)[0], 16)
                del raw[: end + 2]
                if size == 0:
                    return
                self.chunk_left = size
            take = min(self.chunk_left, len(raw))
            self.body += raw[:take]
            del raw[:take]
            self.chunk_left -= take

    def _split(self, now: float) -> None:
        body = self.body
        while True:
            end = body.find(b"\n\n")
            if end < 0:
                return
            message = bytes(body[:end])
            del body[: end + 2]
            if message.startswith(b"event: change") or b"\nevent: change" in message:
                continue  # graphapp's node-change feed: not a snapshot
            data = [
                line[5:].lstrip(b" ") for line in message.split(b"\n") if line.startswith(b"data:")
            ]
            if data and any(data):
                self.events += 1
                self.last_data = b"\n".join(data)
                self.last_event_at = now
                if self.first_at is None:
                    self.first_at = now

    def mark(self) -> None:
        self.events = 0
        self.first_at = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Clients:
    def __init__(self) -> None:
        self.streams: list[Stream] = []

    @property
    def live(self) -> list[Stream]:
        return [stream for stream in self.streams if not stream.lost]

    async def open(self, command: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        host, port, path = command["host"], int(command["port"]), command["path"]
        cookies: list[str] = command.get("cookies") or [""]
        limit = asyncio.Semaphore(int(command.get("concurrency", 100)))
        errors: Counter[str] = Counter()
        base = len(self.streams)

        async def one(index: int) -> None:
            cookie = cookies[index % len(cookies)]
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
                + (f"Cookie: {cookie}\r\n" if cookie else "")
                + "\r\n"
            ).encode()
            async with limit:
                opened: asyncio.Future[None] = loop.create_future()
                try:
                    _, stream = await loop.create_connection(
                        lambda: Stream(request, opened), host, port
                    )
                    async with asyncio.timeout(float(command.get("timeout", 60.0))):
                        await opened
                except (OSError, TimeoutError) as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    return
                self.streams.append(stream)

        started = time.perf_counter()
        await asyncio.gather(*(one(base + index) for index in range(int(command["n"]))))
        seconds = time.perf_counter() - started
        return {
            "opened": len(self.streams) - base,
            "failed": sum(errors.values()),
            "errors": dict(errors.most_common(5)),
            "seconds": seconds,
            "open": len(self.live),
        }

    def mark(self) -> dict[str, Any]:
        for stream in self.streams:
            stream.mark()
        return {"open": len(self.live)}

    async def wait(self, command: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + float(command.get("timeout", 30.0))
        live = self.live
        while time.monotonic() < deadline:
            if all(stream.first_at is not None for stream in live):
                break
            await asyncio.sleep(0.005)
        received = [stream.first_at for stream in live if stream.first_at is not None]
        return {"times": received, "missing": len(live) - len(received), "open": len(live)}

    async def summary(self, command: dict[str, Any]) -> dict[str, Any]:
        settle = float(command.get("settle", 1.0))
        deadline = time.monotonic() + float(command.get("timeout", 30.0))
        while time.monotonic() < deadline:
            latest = max((stream.last_event_at for stream in self.streams), default=0.0)
            if time.time() - latest >= settle:
                break
            await asyncio.sleep(0.05)
        live = self.live
        counts = [stream.events for stream in live]
        last = Counter((stream.last_data or b"").decode() for stream in live)
        return {
            "events_total": sum(counts),
            "events_min": min(counts, default=0),
            "events_max": max(counts, default=0),
            "last": dict(last.most_common(5)),
            "open": len(live),
        }

    def close(self) -> dict[str, Any]:
        for stream in self.streams:
            stream.close()
        return {"closed": len(self.streams)}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    clients = Clients()
    while line := await reader.readline():
        command = json.loads(line)
        name = command["cmd"]
        answer: dict[str, Any]
        if name == "open":
            answer = await clients.open(command)
        elif name == "mark":
            answer = clients.mark()
        elif name == "wait":
            answer = await clients.wait(command)
        elif name == "summary":
            answer = await clients.summary(command)
        elif name == "close":
            answer = clients.close()
        else:
            answer = {"error": f"unknown command {name!r}"}
        answer["cpu"] = cpu_seconds()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if name == "close":
            await asyncio.sleep(0.2)
            return


def main() -> None:
    raise_fd_limit()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
