"""The files graphapp's commands read and write: regular files only, reads bounded.

A device (``/dev/zero``) never ends, a FIFO blocks until a writer comes, a
directory is no file: each is refused before a byte is read or written. A read
stops one byte past its limit, however far a file grows while it is read.
"""

import os
import stat
import sys
from typing import BinaryIO

CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class FileRefused(Exception):
    """A file is not one a command reads or writes; the message says why."""


class TooLarge(FileRefused):
    """A file holds more bytes than the read's limit."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        found = f"{size:,} bytes, " if size is not None else ""
        super().__init__(f"{found}over the limit of {limit:,} bytes")


def _regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise FileRefused(f"{kind}, not a regular file")


def _open(path: str, flags: int) -> int:
    """A descriptor of the regular file ``path``; raises FileRefused or OSError.

    Looked at before it is opened (opening a FIFO or a device can block or act
    on it) and again once open, in case it was swapped in between.
    """
    try:
        _regular(os.stat(path).st_mode)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    try:
        _regular(os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """All of ``stream`` if it holds at most ``limit`` bytes; raises TooLarge."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise TooLarge(limit)


def read_limited(path: str, limit: int) -> bytes:
    """The regular file ``path`` (``-``: standard input), at most ``limit`` bytes.

    Raises FileRefused (not a regular file), TooLarge or OSError.
    """
    if path == "-":
        return read_at_most(sys.stdin.buffer, limit)
    with open(_open(path, os.O_RDONLY), "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise TooLarge(limit, size)
        return read_at_most(stream, limit)


def write_regular(path: str, data: bytes) -> None:
    """Replace the contents of the regular file ``path`` (created if missing) by ``data``.

    Raises FileRefused or OSError.
    """
    with open(_open(path, os.O_WRONLY | os.O_CREAT), "wb") as stream:
        stream.truncate()
        stream.write(data)
