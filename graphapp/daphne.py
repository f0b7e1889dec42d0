"""daphne that refuses a request body over the application's limit as it arrives.

``python -m graphapp.daphne [daphne's options] module:application`` runs
daphne's own command line, for an application wrapped in
:class:`graphapp.bodylimit.BodyLimit`, with one change: each HTTP/1.1 request
checks its body against that limit while Twisted receives it.

daphne calls the application only once the whole body is in (Twisted writes it
to a temporary file, daphne then copies it into the application's queue in
memory), so BodyLimit alone comes too late there: a 256 MiB POST to any URL
still costs daphne its size in memory, which stays taken, and twice its size in
temporary files. daphne has no option for a limit and Twisted none either
(twisted/twisted#4898), so this takes the one way in: daphne's HTTP factory
makes a ``daphne.http_protocol.WebRequest`` for every request, and here that
name is :class:`BoundedRequest`. A ``Content-Length`` over the limit is then
answered 413 before a byte of the body is read; a chunked body is cut as it
passes the limit. The answer is BodyLimit's (JSON under its ``json_prefixes``)
and closes the connection.

HTTP/2 (daphne on a TLS endpoint with Twisted's http2 extra) is left as daphne
has it: its requests are not bounded here.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from daphne import http_protocol
from daphne.cli import CommandLineInterface
from twisted.web import http

from graphapp.bodylimit import REASON, STATUS, BodyLimit

logger = logging.getLogger(__name__)


class BoundedRequest(http_protocol.WebRequest):
    """daphne's request, which refuses a body over ``BodyLimit.limit`` as it arrives."""

    refused = False
    received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and self._over(length):
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self._over(self.received):
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        # A body that fits within one read may be complete after the refusal.
        if not self.refused:
            super().requestReceived(command, path, version)

    def _over(self, size: int) -> bool:
        limit = self.server.application.limit
        return limit is not None and size > limit and isinstance(self.channel, http.HTTPChannel)

    def _refuse(self) -> None:
        """Answer 413 and close, as Twisted answers a request it cannot parse."""
        self.refused = True
        channel = self.channel
        # Twisted sets the request's path only once the body is in; the channel
        # keeps it from the request line.
        path = channel._path.split(b"?", 1)[0].decode("latin-1")
        headers = [
            (name.lower(), value)
            for name, values in self.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        refusal = self.server.application.refusal(path, headers)
        # Else the channel would answer `Expect: 100-continue` after the 413.
        self.requestHeaders.removeHeader(b"expect")
        head = [b"HTTP/1.1 %d %s" % (STATUS, REASON)]
        head += [name + b": " + value for name, value in refusal.headers]
        channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + refusal.body)
        channel.loseConnection()
        logger.info("413 for %s: a body over %s bytes", path, self.server.application.limit)


class BoundedCommandLine(CommandLineInterface):
    """daphne's command line, for an application with a BodyLimit outermost."""

    def load_asgi_app(self, asgi_app_path: str) -> Any:
        application = super().load_asgi_app(asgi_app_path)
        if not isinstance(application, BodyLimit):
            sys.exit(
                f"graphapp.daphne: {asgi_app_path} is not a graphapp.bodylimit.BodyLimit "
                f"({type(application).__name__}): there is no limit to apply"
            )
        return application


def main() -> None:
    http_protocol.WebRequest = BoundedRequest
    BoundedCommandLine.entrypoint()


if __name__ == "__main__":
    main()
