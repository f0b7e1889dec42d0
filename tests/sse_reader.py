"""Read graphapp's stream with one Python SSE client library, as its users do.

Run as ``python -m tests.sse_reader LIBRARY URL SESSIONID`` (LIBRARY: httpx-sse,
sseclient-py or requests-sse). Prints one JSON line for what the library yields:
``{"event", "data", "retry"}`` per event (``retry`` where the library shows it,
else null), ``{"open": true}`` per connection, ``{"end": true}`` when the library
stops by itself. tests/test_clients.py reads these lines, and tests/js/read_stream.mjs
prints the same for Node's eventsource.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import requests
import requests_sse
import sseclient
from httpx_sse import connect_sse


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


def with_httpx_sse(url: str, cookies: dict[str, str]) -> None:
    with (
        httpx.Client(cookies=cookies, timeout=None) as client,
        connect_sse(client, "GET", url) as source,
    ):
        source.response.raise_for_status()
        emit(open=True)
        for sse in source.iter_sse():
            emit(event=sse.event, data=sse.data, retry=sse.retry)


def with_sseclient_py(url: str, cookies: dict[str, str]) -> None:
    response = requests.get(url, stream=True, cookies=cookies, timeout=None)
    response.raise_for_status()
    emit(open=True)
    for event in sseclient.SSEClient(response).events():
        emit(event=event.event, data=event.data, retry=int(event.retry) if event.retry else None)


def with_requests_sse(url: str, cookies: dict[str, str]) -> None:
    # It reconnects by itself (after the stream's retry, doubled at each attempt).
    with requests.Session() as session:
        session.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        with requests_sse.EventSource(
            url, session=session, max_connect_retry=20, on_open=lambda: emit(open=True)
        ) as source:
            for event in source:
                emit(event=event.type, data=event.data, retry=None)


LIBRARIES: dict[str, Callable[[str, dict[str, str]], None]] = {
    "httpx-sse": with_httpx_sse,
    "sseclient-py": with_sseclient_py,
    "requests-sse": with_requests_sse,
}


def main() -> None:
    library, url, session_id = sys.argv[1:]
    try:
        LIBRARIES[library](url, {"sessionid": session_id})
    except (httpx.HTTPError, requests.RequestException) as exc:
        emit(error=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc
    emit(end=True)


if __name__ == "__main__":
    main()
