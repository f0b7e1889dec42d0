"""Scenario 11: one nodes list over 100 nodes of 2.5 MB metadata (issue 15).

Rows as a database holds them from before ``MAX_METADATA_BYTES`` (or from bulk
SQL past it). Measures, on a running server, what ``GET /graph/api/nodes/?limit=100``
answers (bytes, seconds), the server's resident memory before and at its peak,
and the latency of a small request (``/graph/api/stats/``) made meanwhile from
another client: what every other request to that process waits.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ROOT, Server

NODES = 100
BLOB = 2_500_000
SEED = f"""
from graphapp.models import Node
Node.objects.bulk_create(
    [Node(content=f"big {{i}}", node_type="FACT", momentum=0.9, metadata={{"blob": "x" * {BLOB}}})
     for i in range({NODES})],
    batch_size=10,
)
"""


def seed(env: dict[str, str]) -> None:
    """The big rows, written past validation as bulk_create does."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=env, check=True
    )


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: not Linux?")


async def _probe(client: httpx.AsyncClient, done: asyncio.Event, seconds: list[float]) -> None:
    while not done.is_set():
        started = time.perf_counter()
        (await client.get("/graph/api/stats/")).raise_for_status()
        seconds.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def measure(server: Server, cookie: str, parallel: int) -> dict[str, Any]:
    """``parallel`` lists at once, and the small request's latencies meanwhile."""
    headers = {"Cookie": cookie}
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300) as lists,
        httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300) as other,
    ):
        (await other.get("/graph/api/stats/")).raise_for_status()
        assert server.process is not None
        before = server.rss()
        done = asyncio.Event()
        latencies: list[float] = []
        probe = asyncio.create_task(_probe(other, done, latencies))
        started = time.perf_counter()
        answers = await asyncio.gather(
            *[lists.get("/graph/api/nodes/?limit=100") for _ in range(parallel)]
        )
        seconds = time.perf_counter() - started
        done.set()
        await probe
    for answer in answers:
        answer.raise_for_status()
    return {
        "parallel": parallel,
        "bytes": len(answers[0].content),
        "truncated": answers[0].json().get("truncated"),
        "seconds": seconds,
        "rss_before": before,
        "rss_peak": peak_rss(server.process.pid),
        "other_max_ms": 1000 * max(latencies),
        "other_median_ms": 1000 * statistics.median(latencies),
    }
