"""Scenario 10's client and probes: one large anonymous POST, and what it costs the server.

The body is zeros made as they are sent (one 1 MiB buffer, sent again and
again), never stored. While it goes out, a thread samples the server's RSS and
the temporary files it holds open (Twisted's copy of the body, Django's spool)
every 10 ms: deleted at once, they are visible only through /proc/PID/fd.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import HOST, Server

CHUNK = 2**20
SAMPLE_EVERY = 0.01


def temp_bytes(pid: int, folder: Path) -> int:
    """Disk taken by the files under ``folder`` that process ``pid`` holds open."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)):
                total += os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
    return total


@dataclass
class Sampler:
    """The peaks of a server's RSS and temporary files while it runs (a thread)."""

    pid: int
    folder: Path
    rss_peak: int = 0
    temp_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, process.memory_info().rss)
            self.temp_peak = max(self.temp_peak, temp_bytes(self.pid, self.folder))
            time.sleep(SAMPLE_EVERY)


def _head(path: str, size: int, chunked: bool) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()


@dataclass
class Sender:
    """Sends the body in a thread until it is all out, the server answers or closes."""

    sock: socket.socket
    size: int
    chunked: bool
    sent: int = 0
    error: str = ""
    answered: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        buffer = b"\0" * CHUNK
        frame = b"%x\r\n%s\r\n" % (CHUNK, buffer) if self.chunked else buffer
        try:
            while self.sent < self.size and not self.answered.is_set():
                self.sock.sendall(frame)
                self.sent += CHUNK
            if self.chunked and not self.answered.is_set():
                self.sock.sendall(b"0\r\n\r\n")
        except OSError as exc:  # the server closed the connection: the answer says why
            self.error = type(exc).__name__


def post(server: Server, path: str, size: int, *, chunked: bool) -> dict[str, Any]:
    """POST ``size`` bytes of zeros to ``path`` anonymously; the answer's status
    line, the bytes sent before it came and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection((HOST, server.port)) as sock:
        sock.sendall(_head(path, size, chunked))
        sender = Sender(sock, size, chunked)
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        sock.settimeout(300)
        try:
            answer = sock.recv(4096)
        except OSError as exc:
            answer = f"no answer: {type(exc).__name__}".encode()
        sender.answered.set()
        seconds = time.monotonic() - started
        sent = sender.sent
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        thread.join(30)
    return {
        "status_line": answer.split(b"\r\n", 1)[0].decode("latin-1"),
        "sent_before_answer": sent,
        "send_error": sender.error,
        "seconds": seconds,
    }
